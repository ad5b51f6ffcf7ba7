"""fastnn.save / fastnn.load: round trips, atomic writes, clear errors that change nothing,
and resuming from a checkpoint continues the uninterrupted trajectory bitwise."""
import io as stdio
import json
import os
import zipfile

import numpy as np
import pytest

import fastnn
from fastnn import io, nn, optim
from fastnn.models import MLP


def make_model(seed=0, **kwargs):
    fastnn.manual_seed(seed)
    config = dict(in_features=6, hidden=[8, 5], out_features=3, batchnorm=True)
    config.update(kwargs)
    return MLP(**config)


def batch(step, n=16):
    rng = np.random.default_rng(100 + step)
    return (rng.standard_normal((n, 6)).astype(np.float32),
            rng.integers(0, 3, size=n).astype(np.int64))


def train(model, opt, steps, start=0):
    loss = nn.CrossEntropyLoss()
    model.train()
    for step in range(start, start + steps):
        x, y = batch(step)
        opt.zero_grad()
        loss.forward(model.forward(x), y)
        model.backward(loss.backward())
        opt.step()


def model_arrays(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def assert_state_equal(a, b):
    assert list(a) == list(b)
    for key in a:
        assert a[key].dtype == b[key].dtype, key
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def optimizer_arrays(opt):
    sd = opt.state_dict()
    return json.dumps(sd["param_groups"]), {
        (i, k): np.array(v, copy=True) for i, e in sd["state"].items() for k, v in e.items()}


def assert_optimizer_equal(a, b):
    assert a[0] == b[0] and a[1].keys() == b[1].keys()
    for key in a[1]:
        np.testing.assert_array_equal(a[1][key], b[1][key])


@pytest.fixture(autouse=True)
def numpy_backend():
    with fastnn.use_backend("numpy"):
        yield


# ------------------------------------------------------------------ round trips
def test_load_alone_rebuilds_the_model(tmp_path):
    model = make_model(activation="tanh")
    train(model, optim.SGD(model.parameters(), lr=0.1, momentum=0.9), 2)
    path = tmp_path / "model.npz"
    assert fastnn.save(model, path) == path
    loaded = fastnn.load(path)
    assert type(loaded) is MLP and loaded is not model
    assert loaded.config == model.config
    assert_state_equal(loaded.state_dict(), model.state_dict())
    x, _ = batch(9)
    model.eval()
    loaded.eval()
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))


def test_load_into_a_given_model_keeps_its_dtype(tmp_path):
    model = make_model().double()
    path = tmp_path / "m64.npz"
    fastnn.save(model, path)
    rebuilt = fastnn.load(path)
    counter = np.dtype(np.int64)  # the BatchNorm batch counters stay int64
    assert all(v.dtype == (counter if k.endswith("num_batches_tracked") else np.float64)
               for k, v in rebuilt.state_dict().items())
    target = make_model(seed=5)  # float32: the float64 values are cast on load
    assert fastnn.load(path, model=target) is target
    for key, value in model.state_dict().items():
        np.testing.assert_allclose(target.state_dict()[key], value, rtol=1e-6)
        assert target.state_dict()[key].dtype == (
            counter if key.endswith("num_batches_tracked") else np.float32)


def test_extra_and_optimizer_round_trip(tmp_path):
    model = make_model()
    opt = optim.Adam(model.parameters(), lr=0.01, betas=(0.8, 0.9), weight_decay=1e-4)
    train(model, opt, 3)
    extra = {"epoch": 3, "metrics": {"loss": [1.5, 1.2], "acc": 0.5}, "note": "ok"}
    path = tmp_path / "ckpt.npz"
    fastnn.save(model, path, optimizer=opt, extra=extra)

    other = make_model(seed=1)
    other_opt = optim.Adam(other.parameters(), lr=0.5)
    ckpt = io.load_checkpoint(path, other, other_opt)
    assert ckpt.model is other and ckpt.optimizer is other_opt
    assert ckpt.extra == extra and ckpt.format_version == io.FORMAT_VERSION
    assert_state_equal(other.state_dict(), model.state_dict())
    assert_optimizer_equal(optimizer_arrays(other_opt), optimizer_arrays(opt))
    assert other_opt.param_groups[0]["betas"] == (0.8, 0.9)

    meta = io.read_metadata(path)
    assert meta["format"] == "fastnn-checkpoint" and meta["model"]["config_name"] == "mlp"
    assert meta["optimizer"]["type"] == "Adam" and meta["extra"] == extra
    with np.load(path, allow_pickle=False) as npz:  # a plain, pickle-free .npz
        assert "model/0.weight" in npz.files


class _UserReLU(nn.ReLU):
    pass


def test_model_without_config_needs_model_argument(tmp_path):
    # (a tree of fastnn.nn's own layers is rebuilt: tests/test_probe_checkpoint_rebuild.py)
    model = nn.Sequential(nn.Linear(3, 2), _UserReLU())
    path = tmp_path / "seq.npz"
    fastnn.save(model, path)
    with pytest.raises(io.CheckpointError, match="no config_name/config.*pass model="):
        fastnn.load(path)
    target = nn.Sequential(nn.Linear(3, 2), _UserReLU())
    fastnn.load(path, target)
    assert_state_equal(target.state_dict(), model.state_dict())


# --------------------------------------------------------------- atomic writes
def test_failed_write_leaves_old_file_and_no_temporary(tmp_path, monkeypatch):
    model = make_model()
    path = tmp_path / "model.npz"
    fastnn.save(model, path, extra={"version": "old"})
    old_bytes = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(io.np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        fastnn.save(make_model(seed=3), path, extra={"version": "new"})
    with pytest.raises(OSError, match="disk full"):
        fastnn.save(model, tmp_path / "fresh.npz")
    assert path.read_bytes() == old_bytes
    assert sorted(os.listdir(tmp_path)) == ["model.npz"]


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_a_folder_that_takes_no_new_file_is_named_with_the_cause():
    """fastnn.save('/proc/version') said "No such file or directory:
    '/proc/.version.x1b2c3.tmp'", a file the user never named; /proc answers so for a
    new file in a folder that exists."""
    cause = "nothing can be created in '/proc' (its file system does not allow it)"
    with pytest.raises(OSError) as info:
        fastnn.save(make_model(), "/proc/version")
    assert str(info.value).endswith(f"cannot replace '/proc/version' (by a new file renamed "
                                    f"over it): {cause}")
    with pytest.raises(OSError) as info:
        fastnn.save(make_model(), "/proc/fastnn-model.npz")
    assert str(info.value).endswith(f"cannot write '/proc/fastnn-model.npz': {cause}")


def test_unserialisable_extra_raises_before_writing(tmp_path):
    with pytest.raises(TypeError, match="extra must be JSON-serialisable"):
        fastnn.save(make_model(), tmp_path / "m.npz", extra={"fn": print})
    assert os.listdir(tmp_path) == []


def test_numpy_values_in_extra_are_stored(tmp_path):
    path = tmp_path / "m.npz"
    fastnn.save(make_model(), path, extra={"acc": np.float32(0.5), "epoch": np.int64(2)})
    assert io.load_checkpoint(path).extra == {"acc": 0.5, "epoch": 2}


def test_extra_comes_back_as_it_was_saved(tmp_path):
    # extra went through plain JSON: int keys came back as strings (extra["acc"][0] a
    # KeyError), tuples as lists, NumPy scalars as Python numbers, and an array of more
    # than 64 values was refused; the same value saved inside a dict came back as it was
    path = tmp_path / "m.npz"
    extra = {"per_class_acc": {0: 0.91, 1: 0.85}, "input_shape": (1, 28, 28),
             "best_loss": np.float32(0.25), "confusion": np.arange(100).reshape(10, 10),
             "history": [{"epoch": 1, "loss": 0.5}], "note": None, "done": True}
    fastnn.save(make_model(), path, extra=extra)
    back = io.load_checkpoint(path).extra
    assert back.keys() == extra.keys()
    assert back["per_class_acc"] == {0: 0.91, 1: 0.85}
    assert back["input_shape"] == (1, 28, 28) and isinstance(back["input_shape"], tuple)
    assert back["best_loss"].dtype == np.float32 and back["best_loss"] == np.float32(0.25)
    np.testing.assert_array_equal(back["confusion"], extra["confusion"])
    assert back["history"] == extra["history"] and back["note"] is None
    assert back["done"] is True
    meta = io.read_metadata(path)   # the metadata still shows it as JSON where it can
    assert meta["extra"] is None    # (an array of 100 values is no JSON)
    fastnn.save(make_model(), path, extra={1.5: "float key"})   # (JSON alone, as before)
    assert io.load_checkpoint(path).extra == {"1.5": "float key"}
    assert io.read_metadata(path)["extra"] == {"1.5": "float key"}


def test_overwrite_keeps_permissions(tmp_path):
    path = tmp_path / "m.npz"
    fastnn.save(make_model(), path)
    os.chmod(path, 0o640)
    fastnn.save(make_model(), path)
    assert os.stat(path).st_mode & 0o777 == 0o640


# ------------------------------------------------- errors that change nothing
def _checkpoint_bytes():
    buf = stdio.BytesIO()
    fastnn.save(make_model(), buf)
    return buf.getvalue()


def _not_checkpoints(tmp_path):
    text = tmp_path / "notes.npz"
    text.write_text("hello, not a checkpoint\n")
    npy = tmp_path / "array.npz"
    with open(npy, "wb") as f:
        np.save(f, np.arange(3))
    plain = tmp_path / "plain.npz"
    np.savez(plain, w=np.zeros(3))
    truncated = tmp_path / "truncated.npz"
    fastnn.save(make_model(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    newer = tmp_path / "newer.npz"
    meta = {"format": "fastnn-checkpoint", "format_version": io.FORMAT_VERSION + 1,
            "model": {"keys": []}}
    np.savez(newer, **{io.META_KEY: np.array(json.dumps(meta))})
    missing = tmp_path / "missing_array.npz"
    fastnn.save(make_model(), missing)
    with zipfile.ZipFile(missing) as zin:
        kept = {n: zin.read(n) for n in zin.namelist() if n != "model/0.weight.npy"}
    with zipfile.ZipFile(missing, "w") as zout:
        for name, data in kept.items():
            zout.writestr(name, data)
    # single flipped bits that zipfile and numpy's header parser report with their own
    # exception types (NotImplementedError, tokenize.TokenError before the fix)
    method = tmp_path / "compression_method.npz"
    raw = bytearray(_checkpoint_bytes())
    raw[raw.find(b"PK\x01\x02") + 10] = 99   # the central directory's compression method
    method.write_bytes(bytes(raw))
    header = tmp_path / "header.npz"
    raw = bytearray(_checkpoint_bytes())
    raw[raw.find(b"'shape': (), }") + 13] = ord("u")   # '}' with bit 3 flipped
    header.write_bytes(bytes(raw))
    return {"text": (text, "not a fastnn checkpoint"),
            "compression method": (method, "damaged"),
            "array header": (header, "damaged"),
            "npy": (npy, "single .npy array"),
            "plain npz": (plain, "without '__fastnn_checkpoint__'"),
            "truncated": (truncated, "not a fastnn checkpoint|damaged"),
            "newer": (newer, "newer than this fastnn reads"),
            "missing array": (missing, r"damaged.*model/0.weight")}


def test_not_a_checkpoint_raises_and_changes_nothing(tmp_path):
    model = make_model()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train(model, opt, 1)
    before, opt_before = model_arrays(model), optimizer_arrays(opt)
    for case, (path, message) in _not_checkpoints(tmp_path).items():
        with pytest.raises(io.CheckpointError, match=message):
            fastnn.load(path, model, opt)
        assert_state_equal(model.state_dict(), before)
        assert_optimizer_equal(optimizer_arrays(opt), opt_before)
    with pytest.raises(FileNotFoundError):
        fastnn.load(tmp_path / "absent.npz")


@pytest.mark.parametrize("change", [dict(hidden=[8, 4]), dict(hidden=[8]),
                                    dict(batchnorm=False), dict(in_features=7)])
def test_wrong_shape_raises_and_changes_nothing(tmp_path, change):
    path = tmp_path / "m.npz"
    fastnn.save(make_model(), path)
    other = make_model(seed=2, **change)
    before = model_arrays(other)
    with pytest.raises(io.CheckpointError, match="does not fit MLP"):
        fastnn.load(path, other)
    assert_state_equal(other.state_dict(), before)


def test_bad_optimizer_state_leaves_model_and_optimizer_unchanged(tmp_path):
    model = make_model()
    sgd = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    train(model, sgd, 2)
    with_sgd = tmp_path / "sgd.npz"
    fastnn.save(model, with_sgd, optimizer=sgd)
    model_only = tmp_path / "model.npz"
    fastnn.save(model, model_only)

    target = make_model(seed=4)
    adam = optim.Adam(target.parameters(), lr=0.01)
    train(target, adam, 1)
    before, opt_before = model_arrays(target), optimizer_arrays(adam)
    with pytest.raises(io.CheckpointError, match="belongs to a SGD optimizer, not to Adam"):
        fastnn.load(with_sgd, target, adam)
    with pytest.raises(io.CheckpointError, match="holds no optimizer state"):
        fastnn.load(model_only, target, adam)
    half = optim.SGD(target.parameters()[:2], lr=0.1)  # another parameter list
    with pytest.raises(io.CheckpointError, match="optimizer state does not fit"):
        fastnn.load(with_sgd, target, half)
    assert_state_equal(target.state_dict(), before)
    assert_optimizer_equal(optimizer_arrays(adam), opt_before)


# ------------------------------------------------------------------- resuming
@pytest.mark.parametrize("make_opt", [
    lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3, nesterov=True),
    lambda ps: optim.Adam(ps, lr=0.01, weight_decay=1e-3),
], ids=["sgd", "adam"])
def test_resume_continues_the_uninterrupted_trajectory_bitwise(tmp_path, make_opt):
    path = tmp_path / "resume.npz"
    # uninterrupted run, checkpointed half-way (dropout: the generator state matters too)
    model = make_model(dropout=0.2)
    opt = make_opt(model.parameters())
    train(model, opt, 3)
    fastnn.save(model, path, optimizer=opt, extra={"step": 3})
    train(model, opt, 3, start=3)

    # a "new process": fresh model and optimizer, state from the file
    fastnn.manual_seed(123)
    resumed = fastnn.load(path)
    resumed_opt = make_opt(resumed.parameters())
    ckpt = io.load_checkpoint(path, resumed, resumed_opt, restore_random=True)
    train(resumed, resumed_opt, 3, start=ckpt.extra["step"])

    assert_state_equal(resumed.state_dict(), model.state_dict())
    assert_optimizer_equal(optimizer_arrays(resumed_opt), optimizer_arrays(opt))


def test_new_file_gets_the_umask_permissions(tmp_path):
    umask = os.umask(0o027)
    try:
        path = tmp_path / "m.npz"
        fastnn.save(make_model(), path)
    finally:
        os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_lbfgs_checkpoint_resumes_the_same_run(tmp_path):
    """LBFGS keeps counters, scalars and lists of arrays (no per-parameter step): they
    travel through the checkpoint and the run goes on as if never interrupted."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 3)).astype(np.float32)
    y = rng.standard_normal((8, 2)).astype(np.float32)

    def build():
        fastnn.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        return model, optim.LBFGS(model.parameters(), history_size=3,
                                  line_search_fn="strong_wolfe")

    def closure(model, opt, crit=nn.MSELoss()):
        opt.zero_grad()
        loss = crit(model(x), y)
        model.backward(crit.backward())
        return loss

    model, opt = build()
    for _ in range(2):
        opt.step(lambda: closure(model, opt))
    path = str(tmp_path / "lbfgs.npz")
    fastnn.save(model, path, optimizer=opt)
    model2, opt2 = build()
    fastnn.io.load_checkpoint(path, model2, opt2)
    assert opt2.state_dict()["state"][0]["n_iter"] == opt.state_dict()["state"][0]["n_iter"]
    assert opt.step(lambda: closure(model, opt)) == opt2.step(lambda: closure(model2, opt2))
    for p, q in zip(model.parameters(), model2.parameters()):
        np.testing.assert_array_equal(p.data, q.data)


def test_module_extra_state_travels_through_a_checkpoint(tmp_path):
    """get_extra_state's value (strings, numbers, lists, dicts, arrays) is saved in the
    metadata and the .npz, no pickle, and given back to set_extra_state on load."""
    class Tagged(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 3)
            self.tag = {"name": "run-1", "n": 3, "scale": np.float32(0.5),
                        "history": [1.5, np.arange(4.0)]}

        def get_extra_state(self):
            return self.tag

        def set_extra_state(self, state):
            self.tag = state

    model = Tagged()
    path = str(tmp_path / "tagged.npz")
    fastnn.save(model, path)
    fresh = Tagged()
    fresh.tag = None
    fastnn.load(path, model=fresh)
    assert fresh.tag["name"] == "run-1" and fresh.tag["n"] == 3
    assert fresh.tag["scale"] == np.float32(0.5) and fresh.tag["scale"].dtype == np.float32
    np.testing.assert_array_equal(fresh.tag["history"][1], np.arange(4.0))
    np.testing.assert_array_equal(fresh.fc.weight.data, model.fc.weight.data)
    model.tag = {"bad": object()}
    with pytest.raises(TypeError, match="cannot store state of type object"):
        fastnn.save(model, str(tmp_path / "bad.npz"))


@pytest.mark.parametrize("build", [
    lambda: MLP(6, [8], 3, batchnorm=True, dropout=0.5),
    lambda: __import__("fastnn.models", fromlist=["SmallCNN"]).SmallCNN(
        in_channels=1, input_size=8, num_classes=3, channels=(2, 3), hidden=5)],
    ids=["MLP", "SmallCNN"])
def test_load_alone_restores_a_models_eval_mode_and_frozen_parameters(tmp_path, build):
    # as torch.load of a pickled model: eval mode and requires_grad come back as saved
    model = build()
    model.eval()
    first = next(iter(model.parameters()))
    first.requires_grad = False
    path = tmp_path / "m.npz"
    fastnn.save(model, path)
    loaded = fastnn.load(path)
    assert [m.training for m in loaded.modules()] == [False] * len(list(model.modules()))
    assert [p.requires_grad for p in loaded.parameters()] == \
        [p.requires_grad for p in model.parameters()]
    shape = (4, 6) if isinstance(model, MLP) else (4, 1, 8, 8)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(loaded.forward(x), model.forward(x))
    model.train()                                   # and training mode comes back too
    fastnn.save(model, path)
    assert all(m.training for m in fastnn.load(path).modules())


def test_a_saved_dict_gives_tuples_back_as_tuples():
    """torch.load gives a general checkpoint's tuples back as tuples; fastnn.load gave
    lists (a tuple of arrays too)."""
    buf = stdio.BytesIO()
    saved = {"shape": (3, (4, 5)), "pair": (np.arange(2), "a"), "items": [1, (2,)]}
    fastnn.save(saved, buf)
    buf.seek(0)
    back = fastnn.load(buf)
    assert back["shape"] == (3, (4, 5)) and type(back["shape"][1]) is tuple
    assert type(back["pair"]) is tuple and back["pair"][1] == "a"
    np.testing.assert_array_equal(back["pair"][0], np.arange(2))
    assert back["items"] == [1, (2,)] and type(back["items"]) is list


def test_a_checkpoint_that_does_not_fit_is_pytorchs_runtime_error_too(tmp_path):
    """Code ported from PyTorch catches RuntimeError around loading (load_state_dict's
    type for a checkpoint that does not fit); fastnn's convention is a ValueError."""
    path = tmp_path / "small.npz"
    io.save(MLP(4, [3], 2), path)
    model = MLP(4, [5], 2)
    before = [p.data.copy() for p in model.parameters()]
    with pytest.raises(RuntimeError) as caught:
        io.load(path, model=model)
    assert isinstance(caught.value, (ValueError, io.CheckpointError))
    assert all(np.array_equal(a, p.data) for a, p in zip(before, model.parameters()))
    (tmp_path / "junk.npz").write_bytes(b"not a checkpoint")
    with pytest.raises(RuntimeError):
        io.load(tmp_path / "junk.npz")


def test_extra_the_npz_cannot_hold_apart_is_kept_as_json_as_before(tmp_path):
    # keys that name one .npz member ('a/b' beside 'a': {'b'}), or end in '.npy', made
    # the lossless form raise ValueError out of save; they go through JSON, as before
    path = tmp_path / "m.npz"
    for extra, back in (({"a/b": np.zeros(3), "a": {"b": np.ones(3)}},
                         {"a/b": [0.0] * 3, "a": {"b": [1.0] * 3}}),
                        ({"w.npy": np.zeros(2)}, {"w.npy": [0.0, 0.0]})):
        fastnn.save(make_model(), path, extra=extra)
        assert io.load_checkpoint(path).extra == back
    with pytest.raises(TypeError, match="extra must be JSON-serialisable"):
        fastnn.save(make_model(), path, extra={"z": np.complex64(1j)})


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_torch_save_file_is_named_with_what_to_do(tmp_path, zipped):
    """fastnn.load of a file torch.save wrote (its zip archive, or the legacy pickle)
    said "written by numpy.savez, not fastnn.save?" or "it starts with b'\\x80\\x02...'":
    it now says the file is torch.save's and that its state dict loads through
    torch.load and load_state_dict, which is so."""
    torch = pytest.importorskip("torch")
    linear = torch.nn.Linear(3, 2)
    path = tmp_path / "linear.pt"
    torch.save(linear.state_dict(), path, _use_new_zipfile_serialization=zipped)
    with pytest.raises(io.CheckpointError, match="written by torch.save") as info:
        fastnn.load(path)
    assert "numpy.savez" not in str(info.value)
    assert "load_state_dict" in str(info.value)
    # what the message says to do works
    layer = nn.Linear(3, 2)
    layer.load_state_dict(torch.load(path))
    np.testing.assert_array_equal(layer.weight.data, linear.weight.detach().numpy())
    np.testing.assert_array_equal(layer.bias.data, linear.bias.detach().numpy())


def test_optimizer_groups_come_back_as_saved_through_save_optimizer(tmp_path):
    """fastnn.save(model, path, optimizer=opt) kept the param groups as JSON only, and
    loading turned every list in a group into a tuple (so a user's ['a', 1] came back
    ('a', 1)) and a NumPy scalar into a Python float, where torch.load (and fastnn.save
    of optimizer.state_dict() in a dict) gives them back as they were."""
    model = make_model()
    params = list(model.parameters())
    groups = [{"params": params[:2], "name": "first", "tags": ["a", 1],
               "lr": np.float32(0.05)},
              {"params": params[2:], "name": "rest"}]
    opt = optim.Adam(groups, lr=0.01)
    train(model, opt, 1)
    path = tmp_path / "groups.npz"
    fastnn.save(model, path, optimizer=opt)
    other = make_model(seed=2)
    params = list(other.parameters())
    loaded = optim.Adam([{"params": params[:2]}, {"params": params[2:]}], lr=0.01)
    io.load_checkpoint(path, model=other, optimizer=loaded)
    first, rest = loaded.param_groups
    assert first["tags"] == ["a", 1] and isinstance(first["tags"], list)
    assert type(first["lr"]) is np.float32 and first["lr"] == np.float32(0.05)
    assert first["betas"] == (0.9, 0.999) and isinstance(first["betas"], tuple)
    assert (first["name"], rest["name"]) == ("first", "rest")
    # the next steps are the saved optimizer's
    train(model, opt, 2)
    train(other, loaded, 2)
    assert_state_equal(other.state_dict(), model.state_dict())
