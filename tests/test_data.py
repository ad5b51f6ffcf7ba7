"""Dataset readers on small files written here in the exact on-disk formats."""
import gzip
import os
import pickle
import struct

import numpy as np
import pytest

from fastnn import data
from fastnn.data import CIFARError, IDXError
from fastnn.data.download import DownloadError


def idx_bytes(array, code=0x08, magic_zero=0):
    """An IDX file: 2 zero bytes, dtype code, ndim, big-endian uint32 dims, big-endian data."""
    big = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    header = struct.pack(">HBB", magic_zero, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=big).tobytes()


def write(path, raw, compress):
    if compress:
        path = path.with_name(path.name + ".gz")
        raw = gzip.compress(raw)
    path.write_bytes(raw)
    return path


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("code,dtype", [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16),
                                        (0x0C, np.int32), (0x0D, np.float32),
                                        (0x0E, np.float64)])
def test_read_idx_every_dtype(tmp_path, compress, code, dtype):
    array = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10
    path = write(tmp_path / "a-idx3", idx_bytes(array, code), compress)
    got = data.read_idx(path)
    assert got.dtype == dtype and got.dtype.isnative
    np.testing.assert_array_equal(got, array)


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_rejects_bad_magic(tmp_path, compress):
    path = write(tmp_path / "bad", idx_bytes(np.zeros(3, np.uint8), magic_zero=0x0102), compress)
    with pytest.raises(IDXError, match="magic"):
        data.read_idx(path)


def test_read_idx_rejects_unknown_dtype_code(tmp_path):
    raw = bytearray(idx_bytes(np.zeros(3, np.uint8)))
    raw[2] = 0x0A
    path = write(tmp_path / "bad", bytes(raw), False)
    with pytest.raises(IDXError, match="dtype code 0x0A"):
        data.read_idx(path)


@pytest.mark.parametrize("delta", [-1, 1])
def test_read_idx_rejects_wrong_length(tmp_path, delta):
    raw = idx_bytes(np.zeros((2, 5), np.uint8))
    raw = raw[:delta] if delta < 0 else raw + b"\0"
    path = write(tmp_path / "bad", raw, True)
    with pytest.raises(IDXError, match=r"shape \(2, 5\)"):
        data.read_idx(path)


def test_read_idx_rejects_truncated_header(tmp_path):
    path = write(tmp_path / "bad", idx_bytes(np.zeros((2, 5), np.uint8))[:9], False)
    with pytest.raises(IDXError, match="truncated"):
        data.read_idx(path)


def make_mnist_dir(directory, n_train=7, n_test=3, compress=True, seed=0):
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        write(directory / name, idx_bytes(array), compress)
    return arrays


def serve_mnist(monkeypatch, mirrors, served):
    """Make download=True fetch MNIST from local mirrors (file:// URLs of directories)
    and take the small files of ``served`` (make_mnist_dir's) as the published ones:
    their sizes and MD5 digests."""
    from fastnn.data import download, mnist
    monkeypatch.setitem(mnist.MIRRORS, "mnist", [m.as_uri() + "/" for m in mirrors])
    monkeypatch.setattr(mnist, "_SPLIT_SIZES", {"train": 7, "test": 3})
    monkeypatch.setitem(mnist.MD5, "mnist", {
        stem: download.md5_of(served / (stem + ".gz")) for stem in mnist.FILES.values()})


def serve_cifar(monkeypatch, archive):
    """Make download=True fetch CIFAR-10 from the local file ``archive``, taken as the
    published archive (its MD5 digest)."""
    from fastnn.data import cifar, download
    monkeypatch.setattr(cifar, "URL", archive.as_uri())
    monkeypatch.setattr(cifar, "ARCHIVE_MD5", download.md5_of(archive))


@pytest.mark.parametrize("compress", [False, True])
def test_load_fashion_mnist_from_root(tmp_path, compress):
    arrays = make_mnist_dir(tmp_path, compress=compress)
    x_train, y_train, x_test, y_test = data.load_fashion_mnist(root=tmp_path)
    assert x_train.shape == (7, 28, 28) and x_train.dtype == np.float32
    assert y_train.shape == (7,) and y_train.dtype == np.int64
    assert x_test.shape == (3, 28, 28) and y_test.shape == (3,)
    np.testing.assert_allclose(x_train * 255, arrays["train-images-idx3-ubyte"], atol=1e-4)
    np.testing.assert_array_equal(y_test, arrays["t10k-labels-idx1-ubyte"])
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0


def test_load_flatten_and_env_search(tmp_path, monkeypatch):
    make_mnist_dir(tmp_path / "mnist")
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path))
    x_train, _, x_test, _ = data.load("mnist", flatten=True)
    assert x_train.shape == (7, 784) and x_test.shape == (3, 784)


def test_missing_dataset_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTNN_DATA", str(tmp_path / "nowhere"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="nowhere") as info:
        data.load_mnist()
    assert str(info.value).endswith("Pass download=True (CLI: --download) or set FASTNN_DATA.")


def test_labels_count_mismatch_is_an_error(tmp_path):
    make_mnist_dir(tmp_path)
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(np.zeros(4, np.uint8)), True)
    with pytest.raises(IDXError, match="3 images .* 4 labels"):
        data.load_fashion_mnist(root=tmp_path)


@pytest.mark.parametrize("labels,code,message", [
    (np.array([1.7, 2.2, 3.9], np.float32), 0x0D, "integer class labels"),
    (np.array([-1, 2, 3], np.int32), 0x0C, "labels >= 0")])
def test_labels_must_be_class_indices(tmp_path, labels, code, message):
    # no silent truncation of float labels, no negative classes
    make_mnist_dir(tmp_path)
    write(tmp_path / "t10k-labels-idx1-ubyte", idx_bytes(labels, code=code), True)
    with pytest.raises(IDXError, match=message):
        data.load_fashion_mnist(root=tmp_path)


def test_train_and_test_images_must_have_one_shape(tmp_path):
    make_mnist_dir(tmp_path)
    write(tmp_path / "train-images-idx3-ubyte", idx_bytes(np.zeros((7, 10, 10), np.uint8)),
          True)
    with pytest.raises(IDXError, match=r"\(10, 10\) but .* \(28, 28\)"):
        data.load_fashion_mnist(root=tmp_path)


def write_cifar_batch(path, n, seed):
    """A batch as CIFAR-10 ships it: a pickled dict with bytes keys (Python 2 str)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, n)]
    batch = {b"batch_label": b"testing batch", b"labels": labels, b"data": images,
             b"filenames": [b"img_%d.png" % i for i in range(n)]}
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)
    return images, labels


def make_cifar_dir(directory):
    folder = directory / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    written = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        written[name] = write_cifar_batch(folder / name, 4 + i, seed=i)
    return written


def test_load_cifar10(tmp_path):
    written = make_cifar_dir(tmp_path)
    x_train, y_train, x_test, y_test = data.load_cifar10(tmp_path)
    assert x_train.shape == (4 + 5 + 6 + 7 + 8, 3, 32, 32) and x_train.dtype == np.float32
    assert x_test.shape == (9, 3, 32, 32) and y_test.dtype == np.int64
    images, labels = written["data_batch_1"]
    # rows are the red, green, blue planes of 32x32 in turn
    np.testing.assert_allclose(x_train[:4, 1] * 255, images[:, 1024:2048].reshape(4, 32, 32),
                               atol=1e-4)
    np.testing.assert_array_equal(y_train[:4], labels)
    np.testing.assert_array_equal(y_test, written["test_batch"][1])
    assert data.load("cifar10", root=tmp_path, flatten=True)[0].shape == (30, 3072)


def test_cifar_rejects_malformed_batch(tmp_path):
    path = tmp_path / "data_batch_1"
    with open(path, "wb") as f:
        pickle.dump({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, f)
    with pytest.raises(CIFARError, match=r"\(N, 3072\)"):
        data.read_batch(path)
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(CIFARError, match="not a CIFAR-10"):
        data.read_batch(path)


def test_cifar_unpickler_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(CIFARError, match="refusing to unpickle builtins.print"):
        data.read_batch(path)


def test_digits_split_is_fixed():
    x_train, y_train, x_test, y_test = data.load_digits()
    assert x_train.shape == (1438, 8, 8) and x_test.shape == (359, 8, 8)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    again = data.load("digits", flatten=True)
    np.testing.assert_array_equal(again[0], x_train.reshape(-1, 64))
    np.testing.assert_array_equal(again[3], y_test)
    assert set(np.unique(y_test)) == set(range(10))


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        data.load("imagenet")


def test_download_tries_mirrors_and_checks_sizes(tmp_path, monkeypatch):
    """download=True through urllib, served from file:// URLs (no network here)."""
    from fastnn.data import mnist
    served = tmp_path / "served"
    make_mnist_dir(served)
    serve_mnist(monkeypatch, [tmp_path / "missing", served], served)
    root = tmp_path / "root"
    x_train, y_train, x_test, y_test = data.load_mnist(root=root, download=True)
    assert x_train.shape == (7, 28, 28) and y_test.shape == (3,)
    assert sorted(p.name for p in root.iterdir()) == sorted(
        stem + ".gz" for stem in mnist.FILES.values())  # no temporary files left behind


def test_download_rejects_wrong_sizes_and_reports_every_mirror(tmp_path, monkeypatch):
    from fastnn.data import mnist
    from fastnn.data.download import fetch
    served = tmp_path / "served"
    make_mnist_dir(served)  # 7 training images, not 60000
    monkeypatch.setitem(mnist.MIRRORS, "mnist", [served.as_uri() + "/"])
    with pytest.raises(DownloadError, match="not the expected file .*expected 60000"):
        data.load_mnist(root=tmp_path / "root", download=True)
    assert list((tmp_path / "root").iterdir()) == []   # nothing kept, no temporary file
    with pytest.raises(OSError, match="a-missing.*\n.*b-missing"):
        fetch([(tmp_path / "a-missing").as_uri(), (tmp_path / "b-missing").as_uri()],
              str(tmp_path / "out" / "file"))
    assert list((tmp_path / "out").iterdir()) == []


def test_download_keeps_only_the_published_files_by_their_md5(tmp_path, monkeypatch):
    """A mirror's file of the right kind and size but other bytes (another version, a
    damaged copy that still decompresses) is refused for its MD5 and the next mirror
    tried; with no mirror serving the published bytes nothing is kept."""
    from fastnn.data import mnist
    published, other = tmp_path / "published", tmp_path / "other"
    make_mnist_dir(published, seed=0)
    make_mnist_dir(other, seed=1)   # same sizes, other pixels and labels
    serve_mnist(monkeypatch, [other, published], published)
    x_train, y_train, x_test, y_test = data.load_mnist(root=tmp_path / "root", download=True)
    expected = data.load_mnist(root=published)
    for got, want in zip((x_train, y_train, x_test, y_test), expected):
        np.testing.assert_array_equal(got, want)
    serve_mnist(monkeypatch, [other], published)
    with pytest.raises(DownloadError, match="not the published file .*MD5 is [0-9a-f]{32}, "
                                           "expected [0-9a-f]{32}"):
        data.load_mnist(root=tmp_path / "root2", download=True)
    assert list((tmp_path / "root2").iterdir()) == []   # nothing kept, no temporary file


def test_the_published_digests_are_of_every_file():
    import hashlib

    from fastnn.data import cifar, download, mnist
    for name in mnist.MIRRORS:
        assert set(mnist.MD5[name]) == set(mnist.FILES.values())
        assert all(len(d) == 32 and int(d, 16) >= 0 for d in mnist.MD5[name].values())
    assert len(cifar.ARCHIVE_MD5) == 32
    with open(__file__, "rb") as f:
        assert download.md5_of(__file__, chunk=1000) == hashlib.md5(f.read()).hexdigest()


def test_download_leaves_the_users_own_files_alone(tmp_path, monkeypatch):
    # a subset of the user's own (7 training images) and a missing file: only that one is
    # fetched, and the subset, not a download, is not checked against 60000 nor removed
    from fastnn.data import mnist
    make_mnist_dir(tmp_path / "root")
    missing = tmp_path / "root" / (mnist.FILES["test_labels"] + ".gz")
    missing.unlink()
    monkeypatch.setitem(mnist.MIRRORS, "mnist", [(tmp_path / "nowhere").as_uri() + "/"])
    with pytest.raises(DownloadError):
        data.load_mnist(root=tmp_path / "root", download=True)
    assert len(list((tmp_path / "root").iterdir())) == 3


def test_a_download_cut_short_or_interrupted_is_not_kept(tmp_path, monkeypatch):
    import io
    import urllib.request

    from fastnn.data.download import fetch

    class ShortResponse(io.BytesIO):   # urllib returns a connection closed early so
        headers = {"Content-Length": "100000"}

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False
    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda *a, **k: ShortResponse(b"x" * 5000))
    with pytest.raises(DownloadError, match="stopped after 5000 of 100000 bytes"):
        fetch(["http://example/a"], str(tmp_path / "file"))
    assert list(tmp_path.iterdir()) == []

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(urllib.request, "urlopen", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fetch(["http://example/a"], str(tmp_path / "file"))
    assert list(tmp_path.iterdir()) == []   # (no temporary file left)


def test_an_http_protocol_error_moves_on_to_the_next_mirror(tmp_path, monkeypatch):
    # http.client's IncompleteRead (a chunked body cut short) is no OSError: it escaped
    # fetch, and the next mirror was never tried
    import http.client
    import io
    import urllib.request

    from fastnn.data.download import fetch

    class Response(io.BytesIO):
        headers = {}

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    class CutShort(Response):
        def read(self, *args):
            raise http.client.IncompleteRead(b"part", 1000)

    def urlopen(request, timeout=None):
        return CutShort() if "first" in request.full_url else Response(b"whole file")
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    dest = tmp_path / "file"
    fetch(["http://first/a", "http://second/a"], str(dest))
    assert dest.read_bytes() == b"whole file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]
    with pytest.raises(DownloadError, match="first.*IncompleteRead"):
        fetch(["http://first/a"], str(tmp_path / "other"))


def test_a_downloaded_file_gets_the_umask_mode_as_open_gives(tmp_path, monkeypatch):
    # the temporary file's 0600 (mkstemp) was kept: a shared data folder's files were
    # unreadable to the others
    import stat

    from fastnn.data.download import fetch
    source = tmp_path / "source"
    source.write_bytes(b"data")
    old = os.umask(0o022)
    try:
        fetch([source.as_uri()], str(tmp_path / "fetched"))
        (tmp_path / "opened").write_bytes(b"data")
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(tmp_path / "fetched").st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "opened").st_mode) == 0o644


def test_cifar_download_extracts_the_archive(tmp_path, monkeypatch):
    import tarfile

    from fastnn.data import cifar
    written = make_cifar_dir(tmp_path / "src")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    serve_cifar(monkeypatch, archive)
    x_train, y_train, x_test, y_test = data.load_cifar10(tmp_path / "root", download=True)
    assert x_train.shape == (30, 3, 32, 32)
    np.testing.assert_array_equal(y_test, written["test_batch"][1])


@pytest.mark.parametrize("damage", ["opcode_binbytes8", "opcode_long", "encoding"])
def test_cifar_damaged_pickle_is_a_cifar_error(tmp_path, damage):
    # one corrupted byte makes the unpickler fail with MemoryError, TypeError or
    # LookupError; the reader says which file and that it is not a batch
    import pickle

    from fastnn.data import cifar
    raw = pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1, 2]}, 2)
    raw = {"opcode_binbytes8": b"\x8e" + raw[1:], "opcode_long": b"J" + raw[1:],
           "encoding": raw.replace(b"latin1", b"latXn1")}[damage]
    path = tmp_path / "data_batch_1"
    path.write_bytes(raw)
    with pytest.raises(cifar.CIFARError, match="data_batch_1"):
        cifar.read_batch(path)
    with pytest.raises(FileNotFoundError):
        cifar.read_batch(tmp_path / "missing")


def test_download_fetches_only_the_missing_file_beside_plain_ones(tmp_path, monkeypatch):
    """download=True with three of the four IDX files already in root, uncompressed (as a
    user who gunzipped them has them), fetched all four .gz files, the three plain ones
    again, where the README says it fetches the missing files: now only the missing one
    is fetched, and the plain files are read as they are."""
    from fastnn.data import mnist
    served = tmp_path / "served"
    make_mnist_dir(served, seed=1)
    serve_mnist(monkeypatch, [served], served)
    root = tmp_path / "root"
    mine = make_mnist_dir(root, compress=False, seed=0)
    (root / mnist.FILES["test_labels"]).unlink()
    x_train, y_train, x_test, y_test = data.load_mnist(root=root, download=True)
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [mnist.FILES["train_images"], mnist.FILES["train_labels"],
         mnist.FILES["test_images"], mnist.FILES["test_labels"] + ".gz"])
    np.testing.assert_array_equal(y_train, mine["train-labels-idx1-ubyte"])
    np.testing.assert_array_equal(x_test, mine["t10k-images-idx3-ubyte"] / np.float32(255))
    assert y_test.shape == (3,)


def test_cifar_extraction_cut_short_leaves_no_partial_batch(tmp_path, monkeypatch):
    """The archive was extracted straight under the batches' names, so a Ctrl-C (or a
    full disk) while the last batch was written left all six files there, one of them
    cut short: every later load_cifar10 then found a whole-looking folder and failed
    on that batch until the user removed it. Each batch now appears under its name only
    whole, so the next load extracts the rest from the archive already there."""
    import tarfile

    from fastnn.data import cifar
    written = make_cifar_dir(tmp_path / "src")
    archive = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    serve_cifar(monkeypatch, archive)
    members = len(cifar.TRAIN_BATCHES + cifar.TEST_BATCHES)
    copy, calls = tarfile.copyfileobj, []

    def interrupted(src, dst, length=None, *args, **kwargs):
        calls.append(length)
        if len(calls) < members:
            return copy(src, dst, length, *args, **kwargs)
        dst.write(src.read(length // 2))   # half of the last batch, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(tarfile, "copyfileobj", interrupted)
    root = tmp_path / "root"
    with pytest.raises(KeyboardInterrupt):
        data.load_cifar10(root, download=True)
    monkeypatch.setattr(tarfile, "copyfileobj", copy)
    folder = root / "cifar-10-batches-py"
    left = sorted(folder.iterdir()) if folder.exists() else []
    assert len(left) < members   # the cut one is not there under its name...
    for path in left:            # ...and any batch that is reads whole
        cifar.read_batch(path)
    assert {p.name for p in root.iterdir()} <= {"cifar-10-batches-py",
                                                "cifar-10-python.tar.gz"}   # no temporaries
    monkeypatch.setattr(cifar, "URL", (tmp_path / "offline").as_uri())   # not fetched again
    x_train, y_train, x_test, y_test = data.load_cifar10(root, download=True)
    assert x_train.shape == (30, 3, 32, 32)
    np.testing.assert_array_equal(y_test, written["test_batch"][1])
