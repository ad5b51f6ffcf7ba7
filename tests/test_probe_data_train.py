"""Found by probing the data readers, fit/evaluate and the command line: empty splits
flatten, an empty test set evaluates to NaN (the mean over nothing), a refused run
leaves no output folders behind, and a DataLoader seed of the wrong type names the
loader."""
import pickle

import numpy as np
import pytest

import fastnn
from fastnn import cli, data, models, nn
from fastnn.data import DataLoader
from fastnn.train import evaluate


def test_empty_splits_flatten(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        n = 0 if name == "test_batch" else 2
        batch = {b"labels": [int(v) for v in rng.integers(0, 10, n)],
                 b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8)}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    x_train, y_train, x_test, y_test = data.load("cifar10", root=tmp_path, flatten=True)
    assert x_train.shape == (10, 3072) and x_test.shape == (0, 3072)
    assert y_test.shape == (0,) and y_test.dtype == np.int64


def test_evaluate_on_no_samples_is_nan():
    loss, accuracy = evaluate(models.MLP(4, [3], 2), nn.CrossEntropyLoss(),
                              np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    assert np.isnan(loss) and np.isnan(accuracy)


def test_evaluate_takes_the_pair_as_fit_takes_test_data():
    # fit(model, loss, opt, (x, y), test_data=(x_test, y_test)) and then evaluate(model,
    # loss, (x_test, y_test)) raised "missing y" (a student audit's find)
    fastnn.manual_seed(0)
    model, loss_fn = models.MLP(4, [3], 2), nn.CrossEntropyLoss()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((10, 4)).astype(np.float32), rng.integers(0, 2, 10)
    assert evaluate(model, loss_fn, (x, y)) == evaluate(model, loss_fn, x, y)
    assert evaluate(model, loss_fn, [x, y], batch_size=3) == evaluate(model, loss_fn, x, y, 3)
    with pytest.raises(TypeError, match="expected x and y, or one"):
        evaluate(model, loss_fn, x)


@pytest.fixture
def restore_backend():
    """In-process CLI calls set the backend; later tests get the one they started with."""
    backend = fastnn.get_backend()
    yield
    fastnn.set_backend(backend)


@pytest.mark.parametrize("argv", [["--backend", "nope"], ["--dataset", "mnist"]])
def test_refused_run_makes_no_output_folders(tmp_path, argv, restore_backend):
    out = tmp_path / "out"
    outputs = ["--metrics", str(out / "a" / "m.json"), "--plot", str(out / "b" / "c" / "p.png"),
               "--save", str(out / "d" / "m.npz"), "--data-root", str(tmp_path / "no-data")]
    assert cli.main(["train", *argv, *outputs]) in (1, 2)   # (no such backend; no data)
    assert list(tmp_path.iterdir()) == []


def test_refused_output_path_under_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    assert cli.main(["train", "--dataset", "digits", "--metrics",
                     str(tmp_path / "file" / "sub" / "m.json")]) == 2


@pytest.mark.parametrize("kwargs, error", [({"seed": 1.5}, TypeError), ({"seed": True}, TypeError),
                                           ({"generator": "g"}, TypeError),
                                           ({"seed": -1}, ValueError),
                                           ({"generator": -1}, ValueError)])
def test_dataloader_seed_of_the_wrong_kind_names_the_loader(kwargs, error):
    # (and the argument given: generator= was named 'seed' or 'seed (or generator)')
    with pytest.raises(error, match=f"DataLoader: {next(iter(kwargs))} must be"):
        DataLoader(np.zeros((6, 2), np.float32), None, batch_size=2, shuffle=True, **kwargs)
    loader = DataLoader(np.arange(6.0)[:, None], None, batch_size=6, shuffle=True,
                        seed=np.int64(3))
    assert sorted(next(iter(loader))[:, 0]) == list(range(6))
