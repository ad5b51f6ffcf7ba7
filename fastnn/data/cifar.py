"""CIFAR-10 from its python-pickle batches (``cifar-10-batches-py``) or its binary
version (``cifar-10-batches-bin``).

Each python batch file is a pickled dict with ``data`` (10000, 3072) uint8, rows
holding the red, green then blue 32x32 planes, and ``labels``, a list of 10000 ints.
Batches are unpickled with a restricted unpickler that only builds NumPy arrays,
so a foreign file cannot run code. Each binary batch file is 10000 records of 3073
bytes: the label, then the same 3072 pixel bytes.
"""
import codecs
import os
import pickle
import shutil
import tarfile
import tempfile

import numpy as np

from .download import fetch
from .paths import cache_dir, search_dirs, user_path
from .pixels import float_dtype, to_unit_float

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"  # the published archive's, checked
BATCH_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
TEST_BATCHES = ["test_batch"]
BINARY_DIR = "cifar-10-batches-bin"
BINARY_RECORD = 1 + 3 * 32 * 32  # label byte, then the red, green and blue planes


class CIFARError(ValueError):
    """A file is not a valid CIFAR-10 python batch."""


def _numpy_reconstruct():
    try:
        from numpy._core import multiarray
    except ImportError:  # NumPy < 2
        from numpy.core import multiarray
    return multiarray


def _numpy_frombuffer():
    try:
        from numpy._core.numeric import _frombuffer
    except ImportError:  # NumPy < 2
        from numpy.core.numeric import _frombuffer
    return _frombuffer


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals a pickled ndarray needs."""

    def find_class(self, module, name):
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and \
                name in ("_reconstruct", "scalar"):
            return getattr(_numpy_reconstruct(), name)
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module in ("numpy.core.numeric", "numpy._core.numeric") and name == "_frombuffer":
            return _numpy_frombuffer()  # how protocol 5 writes an array
        if module in ("builtins", "__builtin__") and name == "bytes":
            return bytes  # how protocol 2 writes b"" (an empty batch's data)
        if module == "_codecs" and name == "encode":  # how protocol 2 writes bytes from Python 3
            return codecs.encode
        raise CIFARError(f"refusing to unpickle {module}.{name}: a CIFAR-10 batch holds "
                         f"only lists, bytes and NumPy arrays")


def read_batch(path):
    """Read one CIFAR-10 batch file.

    Returns (x, y): x uint8 of shape (N, 3, 32, 32), y int64 of shape (N,).
    """
    path = os.fspath(path)
    with open(path, "rb") as f:  # a missing or unreadable file: the OSError as it is
        try:
            batch = _ArrayUnpickler(f, encoding="bytes").load()
        except CIFARError as exc:
            raise CIFARError(f"{path}: {exc}") from None
        except (OSError, KeyboardInterrupt):
            raise
        except Exception as exc:
            # a damaged pickle fails in many ways: UnpicklingError and EOFError, but also
            # TypeError, IndexError, LookupError (an unknown encoding) or MemoryError (a
            # corrupted length)
            raise CIFARError(f"{path}: not a CIFAR-10 python batch "
                             f"({type(exc).__name__}: {exc})") from None
    if not isinstance(batch, dict):
        raise CIFARError(f"{path}: expected a pickled dict, got {type(batch).__name__}")
    # (latin-1 decodes any bytes: a damaged key is then reported as a missing one)
    batch = {k.decode("latin-1") if isinstance(k, bytes) else k: v for k, v in batch.items()}
    if "data" not in batch or "labels" not in batch:
        raise CIFARError(f"{path}: expected keys 'data' and 'labels', got "
                         f"{sorted(batch, key=repr)}")
    data = _as_array(path, "data", batch["data"])
    labels = _labels(path, batch["labels"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise CIFARError(f"{path}: expected 'data' uint8 of shape (N, 3072), "
                         f"got {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],):
        raise CIFARError(f"{path}: {data.shape[0]} images but labels of shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise CIFARError(f"{path}: labels must lie in 0..9, got {labels.min()}..{labels.max()}")
    return data.reshape(-1, 3, 32, 32), labels


def _as_array(path, key, value):
    """np.asarray(value) of the batch's entry key; CIFARError for a ragged list."""
    try:
        return np.asarray(value)
    except ValueError as exc:
        raise CIFARError(f"{path}: unreadable {key!r} ({exc})") from None


def _labels(path, value):
    """The batch's labels as int64; CIFARError for anything but integers (no rounding)."""
    labels = _as_array(path, "labels", value)
    if labels.size == 0:  # np.asarray([]) is float64
        return labels.astype(np.int64)
    if labels.dtype.kind not in "iu":
        raise CIFARError(f"{path}: expected integer 'labels', got {labels.dtype} values")
    return labels.astype(np.int64)


def read_binary_batch(path):
    """Read one batch file of CIFAR-10's binary version (``data_batch_1.bin``...).

    Returns (x, y): x uint8 of shape (N, 3, 32, 32), y int64 of shape (N,).
    """
    path = os.fspath(path)
    records = np.fromfile(path, dtype=np.uint8)
    if records.size == 0:   # (a download or copy that wrote nothing, not a batch of none)
        raise CIFARError(f"{path}: empty file (not a CIFAR-10 binary batch)")
    if records.size % BINARY_RECORD:
        raise CIFARError(f"{path}: not a CIFAR-10 binary batch ({records.size} bytes is not "
                         f"a whole number of {BINARY_RECORD}-byte records)")
    records = records.reshape(-1, BINARY_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.size and labels.max() > 9:
        raise CIFARError(f"{path}: labels must lie in 0..9, got {labels.max()} "
                         f"(not a CIFAR-10 binary batch?)")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


# The two versions CIFAR-10 is distributed in: folder, train and test files, reader.
LAYOUTS = (
    (BATCH_DIR, TRAIN_BATCHES, TEST_BATCHES, read_batch),
    (BINARY_DIR, [n + ".bin" for n in TRAIN_BATCHES], [n + ".bin" for n in TEST_BATCHES],
     read_binary_batch),
)


def _find_dir(root):
    """(directory, layout) of the first searched directory holding a whole CIFAR-10."""
    for directory in search_dirs("cifar10", root):
        for layout in LAYOUTS:
            folder, train, test, _ = layout
            for candidate in (directory, os.path.join(directory, folder)):
                if all(os.path.isfile(os.path.join(candidate, n)) for n in train + test):
                    return candidate, layout
    return None, None


def _download(root):
    target = user_path(root) if root is not None else os.path.join(cache_dir(), "cifar10")
    archive = os.path.join(target, "cifar-10-python.tar.gz")
    if not os.path.isfile(archive):
        fetch([URL], archive, check=_check_archive, md5=ARCHIVE_MD5)
    folder = os.path.join(target, BATCH_DIR)
    # extracted into a temporary folder beside it, each batch then renamed into place:
    # one cut short (Ctrl-C, a full disk) is never left under its name, where every
    # later load would find the folder whole and fail on it; the next load extracts
    # what is missing from the archive again
    staging = tempfile.mkdtemp(dir=target, prefix=".extract-")
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = [m for m in tar.getmembers()
                           if m.isfile() and os.path.dirname(m.name) == BATCH_DIR]
                # the "data" filter refuses absolute paths and links out of the target
                extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
                tar.extractall(staging, members=members, **extra)
        except (tarfile.TarError, EOFError) as exc:   # (one that was there: fetch checks its)
            raise CIFARError(f"{archive}: not a readable CIFAR-10 archive ({exc}); remove "
                             f"it to download it again") from None
        os.makedirs(folder, exist_ok=True)
        for member in members:
            name = os.path.basename(member.name)
            os.replace(os.path.join(staging, BATCH_DIR, name), os.path.join(folder, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _check_archive(path):
    """Raise unless path is a gzipped tar holding the python batches (a download to keep)."""
    with tarfile.open(path, "r:gz") as tar:
        names = {os.path.basename(m.name) for m in tar.getmembers() if m.isfile()}
    missing = [n for n in TRAIN_BATCHES + TEST_BATCHES if n not in names]
    if missing:
        raise CIFARError(f"the archive has no {', '.join(missing)}")


def _load(directory, names, read, flatten, dtype):
    xs, ys = zip(*(read(os.path.join(directory, n)) for n in names))
    return to_unit_float(np.concatenate(xs), 255, dtype, flatten), np.concatenate(ys)


def load_cifar10(root=None, download=False, flatten=False, dtype=np.float32):
    """CIFAR-10: 50,000 training and 10,000 test colour images of 10 classes.

    root: a directory holding the batch files or a ``cifar-10-batches-py`` folder
    (or the binary version's ``data_batch_1.bin``... or ``cifar-10-batches-bin``);
    None searches ``$FASTNN_DATA``, ``~/.cache/fastnn/cifar10`` and
    ``/usr/share/datasets/cifar10``. Returns (x_train, y_train, x_test, y_test):
    x float32 (or ``dtype``: float64) in [0, 1], pixel / 255, of shape (N, 3, 32, 32)
    (or (N, 3072) with ``flatten``), y int64 of shape (N,).
    """
    float_dtype(dtype)  # checked before any file is read
    directory, layout = _find_dir(root)
    if directory is None:
        if not download:
            looked = "\n  ".join(search_dirs("cifar10", root))
            raise FileNotFoundError(
                f"CIFAR-10 not found; looked for {BATCH_DIR}/data_batch_1..5 and test_batch "
                f"(or {BINARY_DIR}/data_batch_1..5.bin and test_batch.bin) in:\n  {looked}\n"
                f"Pass download=True (CLI: --download) or set FASTNN_DATA.")
        directory, layout = _download(root), LAYOUTS[0]
    _, train, test, read = layout
    x_train, y_train = _load(directory, train, read, flatten, dtype)
    x_test, y_test = _load(directory, test, read, flatten, dtype)
    return x_train, y_train, x_test, y_test
