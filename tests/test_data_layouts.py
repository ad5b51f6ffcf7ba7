"""Dataset layouts other tools leave on disk: torchvision's MNIST folders and
CIFAR-10's binary version, written here in their exact on-disk formats."""
import numpy as np
import pytest

from fastnn import data
from fastnn.data import CIFARError
from fastnn.data import cifar

from tests.test_data import make_cifar_dir, make_mnist_dir


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashion-mnist", "FashionMNIST")])
def test_torchvision_root_is_read_as_it_is(tmp_path, name, folder):
    # torchvision.datasets.MNIST(root, download=True) leaves root/MNIST/raw/<idx files>
    arrays = make_mnist_dir(tmp_path / folder / "raw", compress=False)
    x_train, y_train, x_test, y_test = data.load(name, root=tmp_path)
    np.testing.assert_allclose(x_train * 255, arrays["train-images-idx3-ubyte"], atol=1e-4)
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte"])


def test_torchvision_layout_under_fastnn_data(tmp_path, monkeypatch):
    make_mnist_dir(tmp_path / "MNIST" / "raw")
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path))
    assert data.load("mnist")[0].shape == (7, 28, 28)


def test_download_completes_a_partial_torchvision_folder(tmp_path, monkeypatch):
    """A torchvision root/MNIST/raw with a file missing (an interrupted torchvision
    download) is completed there with download=True, its files used as they are; a
    root holding files of its own gets the missing ones beside them instead."""
    from fastnn.data import mnist
    from tests.test_data import serve_mnist
    served = tmp_path / "served"
    make_mnist_dir(served, seed=1)
    serve_mnist(monkeypatch, [served], served)
    raw = tmp_path / "root" / "MNIST" / "raw"
    mine = make_mnist_dir(raw, compress=False, seed=0)
    (raw / mnist.FILES["test_labels"]).unlink()
    x_train, y_train, x_test, y_test = data.load_mnist(root=tmp_path / "root", download=True)
    assert sorted(p.name for p in (tmp_path / "root").iterdir()) == ["MNIST"]
    assert (raw / (mnist.FILES["test_labels"] + ".gz")).is_file()
    np.testing.assert_array_equal(y_train, mine["train-labels-idx1-ubyte"])
    assert y_test.shape == (3,)
    make_mnist_dir(tmp_path / "both" / "MNIST" / "raw", seed=0)
    make_mnist_dir(tmp_path / "both", seed=0)
    (tmp_path / "both" / (mnist.FILES["train_images"] + ".gz")).unlink()
    (tmp_path / "both" / "MNIST" / "raw" / (mnist.FILES["test_images"] + ".gz")).unlink()
    data.load_mnist(root=tmp_path / "both", download=True)
    assert (tmp_path / "both" / (mnist.FILES["train_images"] + ".gz")).is_file()


def test_missing_mnist_names_the_torchvision_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"FashionMNIST.raw"):
        data.load("fashion-mnist", root=tmp_path)


def write_binary_batch(path, n, seed):
    """A batch of CIFAR-10's binary version: n records of a label byte and 3072 pixels."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = rng.integers(0, 10, n, dtype=np.uint8)
    path.write_bytes(np.concatenate([labels[:, None], images], axis=1).tobytes())
    return images, labels


def make_binary_dir(directory):
    folder = directory / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    written = {}
    for i, name in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        written[name] = write_binary_batch(folder / name, 3 + i, seed=i)
    (folder / "batches.meta.txt").write_text("airplane\nautomobile\n")
    return written


@pytest.mark.parametrize("inside", [False, True])
def test_load_cifar10_binary_version(tmp_path, inside):
    written = make_binary_dir(tmp_path)
    root = tmp_path / "cifar-10-batches-bin" if inside else tmp_path
    x_train, y_train, x_test, y_test = data.load_cifar10(root)
    assert x_train.shape == (3 + 4 + 5 + 6 + 7, 3, 32, 32) and x_train.dtype == np.float32
    assert y_train.dtype == np.int64 and x_test.shape == (8, 3, 32, 32)
    images, labels = written["data_batch_2.bin"]
    # the record's pixels are the red, green, blue planes of 32x32 in turn
    np.testing.assert_allclose(x_train[3:7, 2] * 255, images[:, 2048:].reshape(4, 32, 32),
                               atol=1e-4)
    np.testing.assert_array_equal(y_train[3:7], labels)
    np.testing.assert_array_equal(y_test, written["test_batch.bin"][1])


def test_binary_and_python_versions_agree(tmp_path):
    written = make_cifar_dir(tmp_path / "py")
    folder = tmp_path / "bin" / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    for name, (images, labels) in written.items():
        record = np.concatenate([np.asarray(labels, np.uint8)[:, None], images], axis=1)
        (folder / (name + ".bin")).write_bytes(record.tobytes())
    for got, want in zip(data.load_cifar10(tmp_path / "bin"), data.load_cifar10(tmp_path / "py")):
        np.testing.assert_array_equal(got, want)


def test_binary_batch_checks_its_records(tmp_path):
    path = tmp_path / "data_batch_1.bin"
    path.write_bytes(bytes(3073 * 2 + 5))
    with pytest.raises(CIFARError, match="whole number of 3073-byte records"):
        cifar.read_binary_batch(path)
    record = bytearray(3073)
    record[0] = 10
    path.write_bytes(bytes(record))
    with pytest.raises(CIFARError, match="labels must lie in 0..9, got 10"):
        cifar.read_binary_batch(path)
    path.write_bytes(b"")   # (was read as a batch of no images)
    with pytest.raises(CIFARError, match="empty file"):
        cifar.read_binary_batch(path)


def test_missing_cifar_names_both_versions(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-bin"):
        data.load_cifar10(tmp_path)
