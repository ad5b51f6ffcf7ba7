"""The norm layers' batch counter in state dicts, as PyTorch 2.13's: ``num_batches_tracked``
(a 0-d int64 array) after running_var wherever PyTorch has it (BatchNorm1d/2d/3d and
InstanceNorm with track_running_stats=True, the lazy layers once materialized), so that
state dicts go strictly both ways between fastnn and torch models, fastnn.save/load
keep it (older checkpoints without it still load), momentum=None's cumulative average
goes on after a round trip, and the counter stays a host int on the GPU."""
import collections

import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.models import MLP, ConvNet, SmallCNN

import torch  # noqa: E402  (after fastnn)

from conftest import assert_close
from cuda_sim_script import assert_script_ok, simulator_script

CPU_BACKENDS = [b for b in fastnn.backends() if b != "cuda"]
TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
COUNTER = "num_batches_tracked"


def _to_torch_state(state, like):
    """fastnn's state dict as tensors, with the version metadata of torch's own state
    dict (``like``): with it torch's strict load requires every counter (a plain dict
    would have torch fill a missing one in)."""
    out = collections.OrderedDict((k, torch.from_numpy(np.array(v))) for k, v in state.items())
    out._metadata = like.state_dict()._metadata
    return out


def _to_fastnn_state(twin):
    return collections.OrderedDict((k, v.detach().numpy()) for k, v in twin.state_dict().items())


def _twin(model, dtype):
    """The torch Sequential of a fastnn Sequential of standard layers (fresh weights)."""
    tnn, layers = torch.nn, []
    for m in model:
        kind = type(m).__name__
        if kind == "Linear":
            t = tnn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
        elif kind == "Conv2d":
            t = tnn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding,
                           bias=m.bias is not None)
        elif kind.startswith("BatchNorm"):
            t = getattr(tnn, kind)(m.num_features, eps=m.eps, momentum=m.momentum,
                                   affine=m.affine, track_running_stats=m.track_running_stats)
        elif kind in ("MaxPool2d", "AvgPool2d"):
            t = getattr(tnn, kind)(m.kernel_size, m.stride, m.padding)
        elif kind == "LeakyReLU":
            t = tnn.LeakyReLU(m.negative_slope)
        else:
            t = getattr(tnn, kind)()
        layers.append(t)
    return tnn.Sequential(*layers).to(TORCH_DTYPES[np.dtype(dtype)])


def _train(model, shape, steps, seed):
    rng = np.random.default_rng(seed)
    model.train()
    dtype = model.parameters()[0].data.dtype
    for _ in range(steps):
        x = rng.standard_normal(shape).astype(dtype)
        model.backward(np.ones_like(model(x)))
    return rng.standard_normal(shape).astype(dtype)


MODELS = {
    "mlp": (lambda: MLP(5, [6, 4], 3, batchnorm=True, activation="leaky_relu"), (7, 5)),
    "cnn": (lambda: SmallCNN(in_channels=2, input_size=8, num_classes=3, channels=(3, 4),
                             hidden=5), (3, 2, 8, 8)),
    "convnet": (lambda: ConvNet(in_channels=2, input_size=8, num_classes=3, width=0.02),
                (2, 2, 8, 8)),
}


# --------------------------------------------------------------- keys like torch's
@pytest.mark.parametrize("name, kwargs", [
    ("BatchNorm1d", {}), ("BatchNorm1d", {"affine": False}), ("BatchNorm2d", {"bias": False}),
    ("BatchNorm3d", {}), ("BatchNorm2d", {"track_running_stats": False}),
    ("BatchNorm1d", {"affine": False, "track_running_stats": False}),
    ("InstanceNorm1d", {"track_running_stats": True}),
    ("InstanceNorm2d", {"track_running_stats": True, "affine": True}),
    ("InstanceNorm3d", {}), ("InstanceNorm2d", {"affine": True})])
def test_keys_and_counter_as_torch_over_training(name, kwargs):
    """The same keys in the same order; the counter a 0-d int64 array with torch's value
    (instance norm never moves it) after training and eval forwards."""
    ours, theirs = getattr(nn, name)(3, **kwargs), getattr(torch.nn, name)(3, **kwargs)
    ndim = {"1d": 3, "2d": 4, "3d": 5}[name[-2:]]
    rng = np.random.default_rng(1)
    for training in (True, True, False):
        ours.train(training), theirs.train(training)
        x = rng.standard_normal((4, 3) + (3,) * (ndim - 2)).astype(np.float32)
        ours(x), theirs(torch.from_numpy(x))
        state, expected = ours.state_dict(), theirs.state_dict()
        assert list(state) == list(expected)
        if COUNTER in expected:
            assert type(state[COUNTER]) is np.ndarray and state[COUNTER].shape == ()
            assert state[COUNTER].dtype == np.int64
            assert state[COUNTER] == int(expected[COUNTER]) == ours.num_batches_tracked
    assert (COUNTER in state) == kwargs.get("track_running_stats", name[0] == "B")


@pytest.mark.parametrize("name", ["LazyBatchNorm1d", "LazyBatchNorm2d",
                                  "LazyInstanceNorm1d"])
def test_lazy_norms_carry_the_counter_once_materialized(name):
    """Before its first input a lazy layer has no state; after, torch's keys and count."""
    ours, theirs = getattr(nn, name)(), getattr(torch.nn, name)()
    assert ours.state_dict() == collections.OrderedDict()
    x = np.random.default_rng(2).standard_normal((4, 3, 5) + (5,) * ("2d" in name))
    x = x.astype(np.float32)
    ours(x), ours(x), theirs(torch.from_numpy(x)), theirs(torch.from_numpy(x))
    state = ours.state_dict()
    assert list(state) == list(theirs.state_dict())
    assert state[COUNTER].dtype == np.int64 and state[COUNTER] == int(theirs.num_batches_tracked)
    fresh = getattr(nn, name)()  # a lazy layer takes its size and count from a state dict
    assert fresh.load_state_dict(_to_fastnn_state(theirs)) == ([], [])
    assert fresh.num_batches_tracked == int(theirs.num_batches_tracked)


# ------------------------------------------------------ models, both ways, strictly
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("model_name", sorted(MODELS))
def test_fastnn_state_loads_strictly_into_torch_and_back(backend, model_name):
    """fastnn -> torch (strict, with torch's version metadata, so the counters are
    required) and torch -> fastnn (strict): every counter, statistic and eval output."""
    build, shape = MODELS[model_name]
    dtype = np.float64
    with fastnn.use_backend(backend):
        fastnn.manual_seed(0)
        model = build().double()
        x = _train(model, shape, 3, seed=0)
        twin = _twin(model, dtype)
        assert twin.load_state_dict(_to_torch_state(model.state_dict(), twin)) == ([], [])
        counters = [k for k in twin.state_dict() if k.endswith(COUNTER)]
        assert counters and all(int(twin.state_dict()[k]) == 3 for k in counters)
        model.eval(), twin.eval()
        assert_close(model(x), twin(torch.from_numpy(x)).detach().numpy(), dtype)
        # the reverse: torch trains on, fastnn takes its state
        twin.train()
        for _ in range(2):
            twin(torch.from_numpy(x))
        back = build().double()
        assert back.load_state_dict(_to_fastnn_state(twin)) == ([], [])
        assert all(back.state_dict()[k] == 5 for k in counters)
        back.eval(), twin.eval()
        assert_close(back(x), twin(torch.from_numpy(x)).detach().numpy(), dtype)


def test_torch_refuses_a_versioned_state_dict_without_the_counter():
    """What the counter is for: torch's strict load of a state dict with its version
    metadata wants num_batches_tracked; fastnn's state dict has it."""
    model = MLP(3, [4], 2, batchnorm=True)
    twin = _twin(model, np.float32)
    state = _to_torch_state(model.state_dict(), twin)
    del state["1." + COUNTER]
    with pytest.raises(RuntimeError, match="Missing key.*1.num_batches_tracked"):
        twin.load_state_dict(state)


def test_a_counter_where_torch_has_none_is_unexpected():
    """track_running_stats=False: no counter in the state dict, and one given is an
    unexpected key (torch's rule), as on a layer that is not a norm."""
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3, track_running_stats=False))
    twin = torch.nn.Sequential(torch.nn.Linear(2, 3),
                               torch.nn.BatchNorm1d(3, track_running_stats=False))
    assert list(model.state_dict()) == list(twin.state_dict()) == [
        "0.weight", "0.bias", "1.weight", "1.bias"]
    bad = {**model.state_dict(), "1." + COUNTER: np.array(2)}
    with pytest.raises(ValueError, match=r"unexpected keys \['1.num_batches_tracked'\]"):
        model.load_state_dict(bad)
    assert model.load_state_dict(bad, strict=False).unexpected_keys == ["1." + COUNTER]


def test_a_state_dict_without_the_counter_loads_strictly_and_keeps_the_count():
    """State dicts written before fastnn carried the counter: strict loading accepts the
    absence (not a missing key) and the count stays as it was (torch's rule for a
    state dict without version metadata)."""
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3, momentum=None))
    _train(model, (5, 2), 4, seed=3)
    old = {k: v for k, v in model.state_dict().items() if not k.endswith(COUNTER)}
    assert model.load_state_dict(old) == ([], [])
    assert model[1].num_batches_tracked == 4
    twin = _twin(model, np.float32)
    twin[1].num_batches_tracked.fill_(4)
    assert twin.load_state_dict({k: torch.from_numpy(v) for k, v in old.items()}) == ([], [])
    assert int(twin[1].num_batches_tracked) == 4
    with pytest.raises(ValueError, match="nothing was loaded.*integer count"):
        model.load_state_dict({**old, "1." + COUNTER: np.array([1.0, 2.0])})
    assert model[1].num_batches_tracked == 4


# ---------------------------------------------------- momentum=None after a round trip
@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("via", ["state_dict", "torch", "checkpoint"])
def test_momentum_none_goes_on_averaging_after_a_round_trip(backend, via, tmp_path):
    """A model trained 3 steps, carried over (a fastnn state dict, torch and back, or a
    checkpoint file) and trained 2 more has the running statistics of 5 steps at once."""
    shape, dtype = (6, 3, 4, 4), np.float64
    build = lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=None))  # noqa
    rng = np.random.default_rng(4)
    batches = [rng.standard_normal(shape) * (i + 1) + i for i in range(5)]
    with fastnn.use_backend(backend):
        fastnn.manual_seed(0)
        first = build().double()
        reference = build().double()
        reference.load_state_dict(first.state_dict())
        for x in batches:
            reference(x)
        for x in batches[:3]:
            first(x)
        if via == "state_dict":
            state = first.state_dict()
        elif via == "torch":
            twin = _twin(first, dtype)
            twin.load_state_dict(_to_torch_state(first.state_dict(), twin))
            state = _to_fastnn_state(twin)
        else:
            fastnn.save(first, tmp_path / "bn.npz")
            state = None
        second = build().double()
        if state is None:
            fastnn.load(tmp_path / "bn.npz", model=second)
        else:
            second.load_state_dict(state)
        assert second[1].num_batches_tracked == 3
        for x in batches[3:]:
            second(x)
    assert second[1].num_batches_tracked == reference[1].num_batches_tracked == 5
    for key in ("running_mean", "running_var"):
        assert_close(getattr(second[1], key), getattr(reference[1], key), dtype, err_msg=key)


# ------------------------------------------------------------------------ checkpoints
def _strip_counters(path, out):
    """A copy of a checkpoint as fastnn wrote it before it saved the counters."""
    import json
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files if not k.endswith(COUNTER)}
    meta = json.loads(str(arrays[fastnn.io.META_KEY][()]))
    meta["model"]["keys"] = [k for k in meta["model"]["keys"] if not k.endswith(COUNTER)]
    arrays[fastnn.io.META_KEY] = np.array(json.dumps(meta))
    np.savez(out, **arrays)


def test_checkpoints_keep_the_counter_and_older_ones_still_load(tmp_path):
    fastnn.manual_seed(0)
    model = MLP(4, [5, 3], 2, batchnorm=True)
    x = _train(model, (6, 4), 3, seed=5)
    path = fastnn.save(model, tmp_path / "new.npz")
    meta = fastnn.io.read_metadata(path)
    assert meta["model"]["keys"] == list(model.state_dict())
    rebuilt = fastnn.load(path)
    assert [rebuilt[i].num_batches_tracked for i in (1, 4)] == [3, 3]
    state = rebuilt.state_dict()
    assert state["1." + COUNTER].dtype == np.int64 and state["4." + COUNTER] == 3
    _strip_counters(path, tmp_path / "old.npz")
    old = fastnn.load(tmp_path / "old.npz")  # rebuilt from the config: counts 0
    assert [old[i].num_batches_tracked for i in (1, 4)] == [0, 0]
    old.eval(), model.eval()
    np.testing.assert_array_equal(old(x), model(x))
    kept = MLP(4, [5, 3], 2, batchnorm=True)
    kept[1].num_batches_tracked = 9
    assert fastnn.load(tmp_path / "old.npz", model=kept) is kept
    assert kept[1].num_batches_tracked == 9  # a file without the counter leaves it
    fastnn.load(path, model=kept)
    assert kept[1].num_batches_tracked == 3
    with pytest.raises(fastnn.io.CheckpointError, match="missing keys"):
        fastnn.load(tmp_path / "old.npz", model=MLP(4, [5, 3, 2], 2, batchnorm=True))


class _Concat(nn.Module):
    """A user module: the Sequential checks the layers after it only as they run."""

    def forward(self, x):
        return np.concatenate([x, x], axis=1)

    def backward(self, grad_out):
        half = grad_out.shape[1] // 2
        return grad_out[:, :half] + grad_out[:, half:]


def test_a_failed_forward_puts_the_counter_back_with_the_statistics():
    model = nn.Sequential(nn.BatchNorm1d(3, momentum=None), _Concat(), nn.Linear(5, 2))
    before = model.state_dict()
    with pytest.raises(ValueError, match="Sequential layer 2"):
        model(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
    assert model[0].num_batches_tracked == 0
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[key], err_msg=key)


# ---------------------------------------------------------------- on the GPU (simulated)
@simulator_script([
    "import numpy as np, fastnn",
    "from fastnn import device as fdevice, nn",
    "from numba import cuda",
    "model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=None)).double()",
    "model.to('cuda')",
    "rng = np.random.default_rng(0)",
    "for _ in range(2):",
    "    model(cuda.to_device(rng.standard_normal((5, 3))))",
    "bn = model[1]",
    "assert fdevice.is_device_array(bn.running_mean)",
    "assert type(bn.num_batches_tracked) is int and bn.num_batches_tracked == 2",
    "state = model.state_dict()",
    "c = state['1.num_batches_tracked']",
    "assert type(c) is np.ndarray and c.dtype == np.int64 and c.shape == () and c == 2",
    "other = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=None)).double()",
    "other.to('cuda')",
    "assert other.load_state_dict(state) == ([], [])",
    "assert other[1].num_batches_tracked == 2",
    "x = rng.standard_normal((5, 3))",
    "model(x), other(x)",
    "assert model[1].num_batches_tracked == other[1].num_batches_tracked == 3",
    "other.cpu()",
    "assert other[1].num_batches_tracked == 3",
    "assert isinstance(other[1].running_mean, np.ndarray)",
    "np.testing.assert_allclose(other[1].running_mean,",
    "                           fdevice.to_host(model[1].running_mean), rtol=1e-12)",
    "print('ok')",
])
def test_the_counter_stays_a_host_int_on_the_gpu_under_the_simulator(background_run):
    """Module.to('cuda') moves the statistics, not the counter: state_dict gives it as a
    host int64 array, load_state_dict sets it on a GPU model, .cpu() keeps it."""
    assert_script_ok(background_run)


def test_a_state_dict_cast_to_float_or_from_pytorch_0_3_loads_as_in_pytorch():
    """PyTorch copies a float count (a state dict cast to float32 as a whole, when
    porting) into its int64 counter, and takes a one-element array of shape (1,) (PyTorch
    0.3's) for any 0-d entry; fastnn refused both. A fractional count stays an error."""
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3, momentum=None))
    _train(model, (5, 2), 4, seed=3)
    as_float = {k: np.asarray(v, np.float32) for k, v in model.state_dict().items()}
    fresh = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3, momentum=None))
    assert fresh.load_state_dict(as_float) == ([], [])
    assert fresh[1].num_batches_tracked == 4
    twin = _twin(fresh, np.float32)
    assert twin.load_state_dict({k: torch.from_numpy(v) for k, v in as_float.items()}) \
        == ([], [])
    assert int(twin[1].num_batches_tracked) == 4
    old = {**model.state_dict(), "1." + COUNTER: np.array([7])}
    assert fresh.load_state_dict(old) == ([], [])
    assert fresh[1].num_batches_tracked == 7

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(np.array(1.0, np.float32))
            self.register_buffer("shift", np.array(0.0, np.float32))

    scaled = Scaled()
    scaled.load_state_dict({"scale": np.array([3.0]), "shift": np.array([2.0])})
    assert scaled.scale.shape == () and float(scaled.scale.data) == 3.0
    assert scaled.shift.shape == () and float(scaled.shift) == 2.0
    with pytest.raises(ValueError, match="size mismatch"):
        scaled.load_state_dict({"scale": np.array([3.0, 4.0]), "shift": np.array(0.0)})
