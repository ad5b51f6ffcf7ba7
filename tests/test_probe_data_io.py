"""Probes of fastnn.data, fastnn.io, fastnn.train and the CLI against the formats' specs and
PyTorch's DataLoader / ToTensor, pinning what the probe fixed."""
import contextlib
import gzip
import io as stdio
import json
import pickle
import struct

import numpy as np
import pytest

import fastnn
from fastnn import cli, data, io, models, nn, optim
from fastnn.data import CIFARError, IDXError
from fastnn.train import fit

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader as TorchLoader, TensorDataset  # noqa: E402

BIG = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@pytest.fixture(autouse=True)
def numpy_backend():
    """In-process CLI calls set the backend; every test starts and ends on numpy."""
    backend = fastnn.get_backend()
    fastnn.set_backend("numpy")
    yield
    fastnn.set_backend(backend)


def idx_bytes(array, code):
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I",
                                                                     *array.shape)
    return header + np.ascontiguousarray(array, dtype=BIG[code]).tobytes()


# --------------------------------------------------------------------------- IDX
@pytest.mark.parametrize("code", sorted(BIG))
def test_idx_every_code_rank_and_compression(tmp_path, code):
    rng = np.random.default_rng(code)
    native = np.dtype(BIG[code]).newbyteorder("=")
    for ndim in range(1, 5):
        for compress in (False, True):
            shape = tuple(int(s) for s in rng.integers(0, 4, ndim))
            array = (rng.standard_normal(shape) * 60).astype(native)
            raw = idx_bytes(array, code)
            path = tmp_path / f"a{ndim}{int(compress)}"
            path.write_bytes(gzip.compress(raw) if compress else raw)
            got = data.read_idx(path)
            assert got.dtype == native and got.dtype.isnative and got.shape == shape
            assert got.flags.c_contiguous and got.flags.writeable
            np.testing.assert_array_equal(got, array)


def test_idx_corrupt_gzip_and_overflowing_header_are_idx_errors(tmp_path):
    raw = bytearray(gzip.compress(idx_bytes(np.arange(12, dtype=np.uint8), 0x08)))
    raw[15] ^= 0xFF  # a damaged deflate stream: zlib.error before the fix
    path = tmp_path / "bad.gz"
    path.write_bytes(bytes(raw))
    with pytest.raises(IDXError, match="corrupt gzip"):
        data.read_idx(path)
    # four 2**16 sizes: their product overflowed int64 to 0 and reached reshape
    path.write_bytes(struct.pack(">HBB4I", 0, 0x08, 4, *[2 ** 16] * 4))
    with pytest.raises(IDXError, match="18446744073709551616 data bytes"):
        data.read_idx(path)
    path.write_bytes(struct.pack(">HBB4I", 0, 0x0E, 4, *[2 ** 32 - 1] * 4))
    with pytest.raises(IDXError, match=r"\(\d{30,} data bytes\)"):  # not negative
        data.read_idx(path)


def make_mnist(directory, n=5):
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
              "train-labels-idx1-ubyte": rng.integers(0, 10, n, dtype=np.uint8),
              "t10k-images-idx3-ubyte": np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
              .repeat(2, 0)[:, :14, :14].repeat(2, 1).repeat(2, 2),
              "t10k-labels-idx1-ubyte": np.array([3, 9], np.uint8)}
    for name, array in arrays.items():
        (directory / (name + ".gz")).write_bytes(gzip.compress(idx_bytes(array, 0x08)))
    return arrays


def test_load_matches_torchvision_to_tensor_and_takes_dtype(tmp_path):
    arrays = make_mnist(tmp_path)
    x_train, y_train, x_test, y_test = data.load("mnist", root=tmp_path)
    images = arrays["t10k-images-idx3-ubyte"]
    # ToTensor divides by 255 in float32; a multiplication by 1/255 is 1 ulp off for half
    np.testing.assert_array_equal(x_test, torch.from_numpy(images).float().div(255).numpy())
    assert x_test.dtype == np.float32 and y_test.dtype == np.int64
    np.testing.assert_array_equal(y_test, [3, 9])
    x64 = data.load("mnist", root=tmp_path, dtype="float64", flatten=True)[2]
    assert x64.dtype == np.float64 and x64.shape == (2, 784)
    np.testing.assert_array_equal(x64, images.reshape(2, -1) / 255.0)
    assert data.load("digits", dtype=np.float64)[0].dtype == np.float64
    for bad in ("int32", None, "float16"):
        with pytest.raises(ValueError, match="dtype must be float32 or float64"):
            data.load("mnist", root=tmp_path, dtype=bad)


def test_download_without_network_is_an_oserror_naming_each_url(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(request, timeout=None):
        raise urllib.error.URLError("[Errno -2] Name or service not known")
    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(OSError, match="(?s)could not download.*ossci-datasets.*yann.lecun"):
        data.load("mnist", root=tmp_path / "dl", download=True)
    assert [p.name for p in (tmp_path / "dl").iterdir()] == []  # no partial files


# ------------------------------------------------------------------------- CIFAR
def cifar_batch(path, obj, protocol=2):
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_batch_any_pickle_protocol_and_empty(tmp_path, protocol):
    images = np.random.default_rng(1).integers(0, 256, (3, 3072), dtype=np.uint8)
    path = cifar_batch(tmp_path / "b", {b"data": images, b"labels": [1, 2, 9]}, protocol)
    x, y = data.read_batch(path)
    assert x.shape == (3, 3, 32, 32) and x.dtype == np.uint8 and y.dtype == np.int64
    np.testing.assert_array_equal(x[1, 2], images[1, 2048:].reshape(32, 32))  # R, G, B planes
    empty = cifar_batch(tmp_path / "e", {"data": np.zeros((0, 3072), np.uint8), "labels": []},
                        protocol)
    assert data.read_batch(empty)[0].shape == (0, 3, 32, 32)


@pytest.mark.parametrize("labels,message", [([1.5, 2, 3], "integer 'labels'"),
                                            (["a", "b", "c"], "integer 'labels'"),
                                            ([1, [2], 3], "unreadable 'labels'")])
def test_cifar_labels_are_never_rounded(tmp_path, labels, message):
    path = cifar_batch(tmp_path / "b", {b"data": np.zeros((3, 3072), np.uint8),
                                        b"labels": labels})
    with pytest.raises(CIFARError, match=message):
        data.read_batch(path)


@pytest.mark.parametrize("batch,message", [
    ({b"da\xe2a": np.zeros((1, 3072), np.uint8), b"labels": [0]}, "expected keys"),
    ({b"data": [[1, 2], [3]], b"labels": [0, 1]}, "unreadable 'data'")])
def test_damaged_cifar_keys_and_ragged_data_name_the_file(tmp_path, batch, message):
    # (a byte flipped in a Python 2 key was a UnicodeDecodeError, ragged data NumPy's
    # ValueError, neither naming the file)
    path = cifar_batch(tmp_path / "data_batch_1", batch)
    with pytest.raises(CIFARError, match=message) as caught:
        data.read_batch(path)
    assert str(path) in str(caught.value)


# -------------------------------------------------------------------- DataLoader
def test_dataloader_matches_torch_batches_and_lengths():
    rng = np.random.default_rng(0)
    for n in (0, 1, 7, 23):
        for batch_size in (1, 4, 7, 30):
            for drop_last in (False, True):
                x = rng.standard_normal((n, 2, 3)).astype(np.float32)
                y = rng.integers(0, 10, n)
                ours = data.DataLoader(x, y, batch_size=batch_size, drop_last=drop_last)
                ref = TorchLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
                                  batch_size=batch_size, drop_last=drop_last)
                assert len(ours) == len(ref)
                got = list(ours)
                assert len(got) == len(list(ref))
                for (bx, by), (tx, ty) in zip(got, ref):
                    np.testing.assert_array_equal(bx, tx.numpy())
                    np.testing.assert_array_equal(by, ty.numpy())
                    assert by.dtype == np.int64 and bx.flags.c_contiguous
                if n == 0:   # PyTorch's RandomSampler refuses to shuffle no samples
                    with pytest.raises(ValueError, match="num_samples=0"):
                        data.DataLoader(x, y, batch_size, shuffle=True, seed=0)
                    continue
                shuffled = data.DataLoader(x, y, batch_size, shuffle=True, seed=0,
                                           drop_last=drop_last)
                assert [len(b) for _, b in shuffled] == [len(ty) for _, ty in ref]


def test_dataloader_list_of_labels_is_one_target():
    x = np.arange(10, dtype=np.float32)[:, None]
    (bx, by), _ = data.DataLoader(x, list(range(10)), batch_size=5)
    np.testing.assert_array_equal(by, np.arange(5))
    loader = data.DataLoader(x, np.arange(10), 4, shuffle=True, seed=3)
    first, second = (np.concatenate([b for _, b in loader]) for _ in range(2))
    assert not np.array_equal(first, second)  # a new order each pass
    again = np.concatenate([b for _, b in data.DataLoader(x, np.arange(10), 4, shuffle=True,
                                                          seed=3)])
    np.testing.assert_array_equal(first, again)  # the same seed, the same first pass


# ------------------------------------------------------------------- checkpoints
def build(kind):
    fastnn.manual_seed(0)
    return {"mlp": lambda: models.MLP(12, [10, 8], 3, batchnorm=True, dropout=0.3),
            "cnn": lambda: models.SmallCNN(1, 8, 3, channels=(2, 3), hidden=5, dropout=0.2),
            "convnet": lambda: models.ConvNet(3, 8, 3, width=0.25),
            "multitask": lambda: models.MultiTaskNet(12, 7, 6, 3, dropout=0.2),
            "vae": lambda: models.VAE(4, 2, hidden=(6,))}[kind]()


def train_step(kind, model, opt, step):
    rng = np.random.default_rng(step)
    shape = {"mlp": (8, 12), "multitask": (8, 12), "cnn": (8, 1, 8, 8),
             "convnet": (8, 3, 8, 8), "vae": (8, 4)}[kind]
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.integers(0, 3, 8)
    model.train()
    opt.zero_grad()
    if kind == "vae":
        model.forward(x)
        model.backward()
    elif kind == "multitask":
        loss = models.MultiTaskLoss()
        a, logits = model.forward(x)
        loss.forward(a, logits, rng.standard_normal(a.shape).astype(np.float32), y)
        model.backward(*loss.backward())
    else:
        loss = nn.CrossEntropyLoss()
        loss.forward(model.forward(x), y)
        model.backward(loss.backward())
    opt.step()


OPTIMIZERS = {
    "SGD": lambda p: optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "Adam": lambda p: optim.Adam(p, lr=0.01, amsgrad=True),
    "AdamW": lambda p: optim.AdamW(p, lr=0.01),
    "RMSprop": lambda p: optim.RMSprop(p, lr=0.01, momentum=0.5, centered=True),
    "Adagrad": lambda p: optim.Adagrad(p, lr=0.05),
    "Adamax": optim.Adamax, "NAdam": optim.NAdam, "RAdam": optim.RAdam,
    "Adadelta": optim.Adadelta, "Rprop": optim.Rprop,
    "ASGD": lambda p: optim.ASGD(p, t0=1), "Adafactor": optim.Adafactor,
}
CASES = [("mlp", name) for name in OPTIMIZERS] + [
    ("cnn", "Adam"), ("multitask", "RMSprop"), ("vae", "Adam"),
    ("vae", "SGD")]


def assert_same_state(a, b):
    assert list(a) == list(b)
    for key in a:
        if isinstance(a[key], str):  # the VAE's noise generator, as JSON
            assert a[key] == b[key]
        else:
            assert a[key].dtype == b[key].dtype
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.parametrize("kind,opt_name", CASES)
def test_resume_gives_the_same_next_steps(tmp_path, kind, opt_name):
    """The VAE's own noise generator travels as extra state (it restarted from its seed)."""
    path = tmp_path / "ckpt.weights"  # any file name, not only .npz
    half = 2
    model = build(kind)
    opt = OPTIMIZERS[opt_name](model.parameters())
    for step in range(half):
        train_step(kind, model, opt, step)
    fastnn.save(model, path, optimizer=opt)
    for step in range(half, 2 * half):
        train_step(kind, model, opt, step)
    fastnn.manual_seed(99)
    resumed = fastnn.load(path)
    assert type(resumed) is type(model)
    resumed_opt = OPTIMIZERS[opt_name](resumed.parameters())
    io.load_checkpoint(path, resumed, resumed_opt, restore_random=True)
    for step in range(half, 2 * half):
        train_step(kind, resumed, resumed_opt, step)
    assert_same_state(resumed.state_dict(), model.state_dict())


def test_wrong_model_changes_nothing_and_paths_are_named(tmp_path):
    convnet = build("convnet")  # rebuilt from its config by load alone
    fastnn.save(convnet, tmp_path / "convnet.npz")
    assert_same_state(fastnn.load(tmp_path / "convnet.npz").state_dict(), convnet.state_dict())
    path = tmp_path / "cnn.npz"
    fastnn.save(build("cnn"), path)
    other = models.SmallCNN(1, 8, 3, channels=(2, 4), hidden=5)
    before = {k: v.copy() for k, v in other.state_dict().items()}
    with pytest.raises(io.CheckpointError, match="does not fit SmallCNN"):
        fastnn.load(path, other)
    assert_same_state(other.state_dict(), before)
    with pytest.raises(FileNotFoundError, match="no such folder.*missing"):
        fastnn.save(other, tmp_path / "missing" / "m.npz")
    with pytest.raises(IsADirectoryError):
        fastnn.save(other, tmp_path)
    png = tmp_path / "image.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(40))
    with pytest.raises(io.CheckpointError, match="not an .npz archive"):
        fastnn.load(png)


# -------------------------------------------------------------------------- fit
@pytest.mark.parametrize("kwargs", [dict(epochs=0), dict(epochs=-1),
                                    dict(epochs=None, max_steps=0), dict(eval_freq=-1)])
def test_fit_refuses_counts_that_give_no_epoch(kwargs):
    model = models.MLP(4, [3], 2)
    x, y = np.zeros((6, 4), np.float32), np.zeros(6, np.int64)
    with pytest.raises(ValueError, match="fit: .* must be a"):
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), (x, y),
            progress=False, log=False, **{"epochs": 1, **kwargs})


# -------------------------------------------------------------------------- CLI
def run_cli(*argv):
    out, err = stdio.StringIO(), stdio.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = cli.main(list(argv))
        except SystemExit as exc:  # argparse errors
            status = exc.code
    return status, out.getvalue(), err.getvalue()


TRAIN = ("train", "--dataset", "digits", "--no-progress", "--hidden", "8", "--max-steps", "2")


@pytest.mark.parametrize("argv,message", [
    (TRAIN + ("--seed", "-1"), "argument --seed: expected a non-negative int"),
    (TRAIN + ("--width", "2"), "--width applies to --model convnet"),
    (TRAIN + ("--metrics", "."), "--metrics expects a file path"),
    (("multitask", "--dataset", "digits", "--epochs", "0"), "--epochs: expected a positive"),
    (("vae", "--epochs", "1", "--n-train", "0"), "--n-train: expected a positive"),
    (("vae", "--epochs", "1", "--n-train", "50", "--lr", "nan"), "error: Adam: invalid lr"),
    (("multitask", "--dataset", "imagenet"), "error: unknown dataset 'imagenet'"),
])
def test_bad_values_are_one_line_errors_with_status_2(argv, message):
    status, out, err = run_cli(*argv)
    assert status == 2 and message in err and "Traceback" not in err
    assert "test accuracy" not in out  # refused before training


def test_every_optimizer_and_course_spellings_train_and_dream(tmp_path):
    for name in ("sgd", "adam", "adamw", "rmsprop", "adagrad", "adamax", "nadam", "radam",
                 "adadelta", "rprop", "asgd", "adafactor"):
        status, out, err = run_cli(*TRAIN, "--optimizer", name)
        assert status == 0, err
        assert out.strip().splitlines()[-1].startswith("test accuracy: ")
    metrics, checkpoint = tmp_path / "m.json", tmp_path / "new" / "model.npz"
    status, _, err = run_cli("train", "--dataset", "digits", "--no-progress",
                             "--dnn_hidden_units", "8,8", "--learning_rate", "0.05",
                             "--max_steps", "3", "--batch_size", "50", "--eval_freq", "2",
                             "--neg_slope", "0.1", "--metrics", str(metrics),
                             "--save", str(checkpoint))  # --save makes its folder
    assert status == 0, err
    written = json.loads(metrics.read_text())
    for key in ("test_accuracy", "train_accuracy", "test_loss", "train_loss", "curves",
                "seconds_per_epoch", "samples_per_second", "steps", "backend", "threads",
                "model", "dataset", "versions", "config", "step_curve"):
        assert key in written
    assert written["steps"] == 3 and written["config"]["hidden"] == [8, 8]
    status, out, err = run_cli("dream", "--checkpoint", str(checkpoint), "--target-class", "3",
                               "--steps", "2", "--out", str(tmp_path / "d.png"),
                               "--no-progress")
    assert status == 0, err
    assert (tmp_path / "d.png").read_bytes()[:4] == b"\x89PNG"
    status, _, err = run_cli("dream", "--checkpoint", str(tmp_path / "d.png"),
                             "--target-class", "3", "--out", str(tmp_path / "e.png"))
    assert status == 1 and "not an .npz archive" in err
