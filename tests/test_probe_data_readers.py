"""Found by probing fastnn.data's readers and dataset utilities against torchvision's
formats and torch.utils.data: the errors PyTorch asserts (TensorDataset's size mismatch,
an empty ConcatDataset) are AssertionErrors too, default_collate leaves NumPy strings and
a tuple field of strings as PyTorch does and keeps a list subclass, and train
--standardize refuses training images without spread (it divided by zero and reported
a diverged loss)."""
import collections
import struct

import numpy as np
import pytest

from fastnn import cli, data
from fastnn.data import ConcatDataset, DataLoader, Dataset, TensorDataset, default_collate


def test_tensor_dataset_and_concat_errors_are_pytorchs_types():
    x, y = np.zeros((4, 2), np.float32), np.arange(3)
    with pytest.raises(AssertionError, match="size mismatch") as info:
        TensorDataset(x, y)
    assert isinstance(info.value, ValueError)
    with pytest.raises(IndexError, match="array 1 is 0-d") as info:
        TensorDataset(x, np.float32(1))   # (PyTorch: size(0) of a 0-d tensor)
    assert isinstance(info.value, ValueError)
    with pytest.raises(AssertionError, match="should not be an empty iterable") as info:
        ConcatDataset([])
    assert isinstance(info.value, ValueError)


class Named(list):
    """A list subclass a sample may be (PyTorch's collate keeps a mutable sequence's type)."""


Pair = collections.namedtuple("Pair", "image name")


@pytest.mark.parametrize("batch", [
    [np.str_("a"), np.str_("b")],
    [np.bytes_(b"a"), np.bytes_(b"b")],
    [(np.ones(2), "a"), (np.zeros(2), "b")],
    [Pair(np.ones(2), "a"), Pair(np.zeros(2), "b")],
    [{"k": ("a", 1)}, {"k": ("b", 2)}],
    [Named([1, "a"]), Named([2, "b"])],
    [[1.5, "a"], [2.5, "b"]],
], ids=["np.str_", "np.bytes_", "tuple", "namedtuple", "dict-of-tuple", "list-subclass",
        "list"])
def test_default_collate_strings_and_sequences_as_torch(batch):
    torch = pytest.importorskip("torch")

    def plain(v):   # containers and their types, arrays/tensors as (dtype, values)
        if isinstance(v, torch.Tensor):
            v = v.numpy()
        if isinstance(v, np.ndarray):
            return ("array", v.dtype.name, v.tolist())
        if isinstance(v, dict):
            return (type(v), {k: plain(x) for k, x in v.items()})
        if isinstance(v, (list, tuple)):
            return (type(v), [plain(x) for x in v])
        return (type(v), v)
    assert plain(default_collate(batch)) == plain(torch.utils.data.default_collate(batch))


def test_loader_gives_a_tuple_of_names_as_torch():
    class Files(Dataset):
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.full(2, i, np.float32), f"img_{i}.png"
    images, names = next(iter(DataLoader(Files(), batch_size=3)))
    assert images.shape == (3, 2) and names == ("img_0.png", "img_1.png", "img_2.png")


def write_idx(path, array):
    path.write_bytes(bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
                     + array.astype(np.uint8).tobytes())


def test_standardize_refuses_images_without_spread(tmp_path, capsys):
    images, labels = np.full((6, 28, 28), 7), np.arange(6)
    for split, n in (("train", 6), ("t10k", 2)):
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", images[:n])
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", labels[:n])
    assert data.load("mnist", root=tmp_path)[0].std() == 0
    argv = ["train", "--dataset", "mnist", "--data-root", str(tmp_path), "--epochs", "1"]
    assert cli.main(argv + ["--standardize"]) == 2
    assert "--standardize: every training pixel is 0.027451 (std 0)" in capsys.readouterr().err


def test_root_and_fastnn_data_expand_the_home_directory(tmp_path, monkeypatch):
    images, labels = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256, np.arange(3)
    raw = tmp_path / "home" / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split in ("train", "t10k"):
        write_idx(raw / f"{split}-images-idx3-ubyte", images)
        write_idx(raw / f"{split}-labels-idx1-ubyte", labels)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    x_train, y_train, _, _ = data.load("mnist", root="~/data")   # (torchvision's root)
    np.testing.assert_array_equal(y_train, labels)
    monkeypatch.setenv("FASTNN_DATA", "~/data")
    np.testing.assert_array_equal(data.load("mnist")[0], x_train)


@pytest.mark.parametrize("fraction", [-0.2, 1.5, float("nan"), True, "0.2"])
def test_digits_test_fraction_outside_0_1_is_refused(fraction):
    pytest.importorskip("sklearn")
    with pytest.raises(ValueError, match="test_fraction must be a number in"):
        data.load_digits(test_fraction=fraction)   # (-0.2 gave 359 train, 1,438 test)
    assert data.load_digits(test_fraction=1)[2].shape == (1797, 8, 8)


@pytest.mark.parametrize("empty", ["train", "t10k"])
def test_train_on_an_empty_split_is_one_line(tmp_path, capsys, empty):
    images = np.random.default_rng(0).integers(0, 256, (4, 28, 28))
    for split in ("train", "t10k"):
        n = 0 if split == empty else 4
        write_idx(tmp_path / f"{split}-images-idx3-ubyte", images[:n])
        write_idx(tmp_path / f"{split}-labels-idx1-ubyte", np.arange(n))
    status = cli.main(["train", "--dataset", "mnist", "--data-root", str(tmp_path),
                       "--epochs", "1", "--hidden", "4", "--no-progress"])
    out = capsys.readouterr()   # (both raised a traceback from the labels' max)
    if empty == "train":
        assert status == 2 and "the training split holds no images" in out.err
    else:   # the test accuracy of no samples is NaN, as evaluate's
        assert status == 0 and "test accuracy: nan" in out.out
