"""fastnn.load(path) without model= rebuilds a tree of fastnn.nn's own layers (as
torch.load of torch.save(model) gives the model back), from the class names and
constructor arguments fastnn.save records (no pickle: class names are looked up among
fastnn.nn's public names only); anything it cannot rebuild faithfully is refused with
CheckpointError, and model= still works."""
import json
from collections import OrderedDict

import numpy as np
import pytest

import fastnn
from fastnn import io, nn, optim

from cuda_sim_script import TEMPORARY_PATH, assert_script_ok, simulator_script

RNG = np.random.default_rng(0)


def ten_lines():
    return nn.Sequential(nn.Linear(64, 100), nn.ReLU(), nn.Linear(100, 10))


def cnn():
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(4, 6, (3, 3), stride=(1, 1), bias=False),
                         nn.AvgPool2d(2), nn.Flatten(), nn.Dropout(0.25), nn.Linear(6, 3))


def same_state(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and np.array_equal(sa[k], sb[k]), k


def round_trip(model, tmp_path, name="m.npz"):
    fastnn.save(model, tmp_path / name)
    return fastnn.load(tmp_path / name)


@pytest.mark.parametrize("backend", ["numpy", "cython"])
def test_ten_line_sequential_round_trip_gives_identical_outputs(tmp_path, backend):
    with fastnn.use_backend(backend):
        model = ten_lines()
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        x, y = RNG.standard_normal((8, 64)).astype(np.float32), RNG.integers(0, 10, 8)
        loss_fn = nn.CrossEntropyLoss()
        loss_fn.forward(model.forward(x), y)
        model.backward(loss_fn.backward())
        opt.step()
        opt.zero_grad()
        fastnn.save(model, tmp_path / "model.npz", optimizer=opt)
        back = fastnn.load(tmp_path / "model.npz")   # the README's line, no model=
        assert type(back) is nn.Sequential and back is not model
        assert [type(m) for m in back] == [nn.Linear, nn.ReLU, nn.Linear]
        assert repr(back) == repr(model)
        same_state(model, back)
        assert np.array_equal(model.forward(x), back.forward(x))
        # it trains on: the optimizer state loads into an optimizer over the rebuilt model
        opt2 = optim.SGD(back.parameters(), lr=0.1, momentum=0.9)
        io.load_checkpoint(tmp_path / "model.npz", back, opt2)
        for m, o in ((model, opt), (back, opt2)):
            loss_fn.forward(m.forward(x), y)
            m.backward(loss_fn.backward())
            o.step()
            o.zero_grad()
        same_state(model, back)


@pytest.mark.parametrize("backend", ["numpy", "cython"])
def test_conv_batchnorm_pool_flatten_linear_round_trip(tmp_path, backend):
    with fastnn.use_backend(backend):
        model = cnn()
        x = RNG.standard_normal((4, 1, 8, 8)).astype(np.float32)
        model.forward(x)  # running statistics and num_batches_tracked move
        model.eval()
        back = round_trip(model, tmp_path)
        assert [type(m).__name__ for m in back] == [type(m).__name__ for m in model]
        assert back[4].stride == (1, 1) and back[4].bias is None and back[7].p == 0.25
        same_state(model, back)
        assert int(back[1].num_batches_tracked) == 1
        assert np.array_equal(model.forward(x), back.forward(x))


def test_nested_containers_and_names_round_trip(tmp_path):
    model = nn.Sequential(OrderedDict(
        features=nn.Sequential(nn.Linear(5, 6), nn.Tanh(),
                               nn.Sequential(nn.Linear(6, 6), nn.LeakyReLU(0.2))),
        heads=nn.ModuleList([nn.Linear(6, 2), nn.LayerNorm(6)]),
        extra=nn.ModuleDict({"emb": nn.Embedding(7, 3, padding_idx=0)})))
    back = round_trip(model, tmp_path)
    assert [name for name, _ in back.named_modules()] == \
        [name for name, _ in model.named_modules()]
    assert back.features[2][1].negative_slope == 0.2
    assert back.extra["emb"].padding_idx == 0
    same_state(model, back)
    x = RNG.standard_normal((3, 5)).astype(np.float32)
    assert np.array_equal(model.features.forward(x), back.features.forward(x))
    # a single layer, not in a container, rebuilds too
    layer = nn.Conv1d(2, 3, 3, padding="same", dilation=2)
    back = round_trip(layer, tmp_path, "layer.npz")
    assert type(back) is nn.Conv1d and back.padding == layer.padding
    same_state(layer, back)


def test_double_model_comes_back_float64(tmp_path):
    model = cnn().double()
    back = round_trip(model, tmp_path)
    assert {v.dtype for v in back.state_dict().values() if v.dtype.kind == "f"} == \
        {np.dtype(np.float64)}
    same_state(model, back)
    x = RNG.standard_normal((2, 1, 8, 8))
    assert back.train().forward(x).dtype == np.float64
    # a dtype argument is kept as given (a NumPy type or dtype)
    lin = nn.Linear(3, 2, dtype=np.float64)
    assert round_trip(lin, tmp_path, "l.npz").weight.data.dtype == np.float64


def test_training_modes_and_frozen_parameters_come_back_as_saved(tmp_path):
    # as torch.load(torch.save(model)): every module keeps its own train()/eval() flag
    model = cnn()
    assert round_trip(model, tmp_path).training is True
    model.eval()
    back = round_trip(model, tmp_path, "eval.npz")
    assert not any(m.training for m in back.modules())
    model.train()
    model[1].eval()                       # BatchNorm frozen in eval mode, the rest training
    model[0].weight.requires_grad = False
    back = round_trip(model, tmp_path, "mixed.npz")
    assert [m.training for m in back.modules()] == [m.training for m in model.modules()]
    assert back[0].weight.requires_grad is False and back[0].bias.requires_grad is True


def test_load_does_not_move_the_random_generator(tmp_path):
    # a tree of layers and the built-in models alike (their constructors draw weights)
    for i, model in enumerate((nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5)),
                               fastnn.models.MLP(4, [3], 2),
                               fastnn.models.SmallCNN(channels=(2, 2), hidden=4))):
        fastnn.save(model, tmp_path / f"m{i}.npz")
        fastnn.manual_seed(3)
        before = fastnn.random.get_state()
        fastnn.load(tmp_path / f"m{i}.npz")
        assert fastnn.random.get_state() == before


def test_checkpoint_holds_only_json_and_arrays(tmp_path):
    model = nn.Sequential(nn.Linear(2, 3), nn.GELU("tanh"), nn.Softmax(dim=1))
    fastnn.save(model, tmp_path / "m.npz")
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:
        meta = json.loads(str(npz[io.META_KEY][()]))
    tree = meta["model"]["rebuild"]["tree"]
    assert tree["class"] == "Sequential"
    assert [c[1]["class"] for c in tree["children"]] == ["Linear", "GELU", "Softmax"]
    assert tree["children"][1][1]["args"] == ["tanh"]
    assert tree["children"][2][1]["kwargs"] == {"dim": 1}


class MyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc.forward(x)


class Linear(nn.Linear):  # a user class that shares a fastnn.nn name
    pass


def refused(model, tmp_path, match):
    path = tmp_path / "r.npz"
    fastnn.save(model, path)      # saving always works
    with pytest.raises(io.CheckpointError, match=match) as info:
        fastnn.load(path)
    assert "pass model=" in str(info.value)
    return path


def test_user_classes_are_refused_and_load_into_model(tmp_path):
    path = refused(MyNet(), tmp_path, "MyNet, not one of fastnn.nn's layers")
    target = MyNet()
    fastnn.load(path, model=target)
    refused(nn.Sequential(nn.Linear(3, 3), Linear(3, 2)), tmp_path,
            r"'1' is a .*test_probe_checkpoint_rebuild.Linear")


def test_non_serialisable_arguments_are_refused(tmp_path):
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, dim_feedforward=8), 1)
    refused(nn.Sequential(enc), tmp_path, "'0' .*TransformerEncoder.* constructor argument")
    gelu = nn.TransformerEncoderLayer(8, 2, dim_feedforward=8, activation=nn.functional.gelu)
    refused(nn.Sequential(nn.Linear(8, 8), gelu), tmp_path,
            r"'1' \(TransformerEncoderLayer\) has a constructor argument that is a function")


def test_changes_after_construction_are_refused(tmp_path):
    drop = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    drop[1].p = 0.1                                  # a plain attribute changed
    refused(drop, tmp_path, r"'1' \(Dropout\) has p=0.1 in the saved model but 0.5")
    layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16)
    layer.linear2 = nn.Linear(16, 8, bias=False)     # a replaced child of a layer
    refused(layer, tmp_path, "'linear2' .*other constructor arguments")
    lin = nn.Linear(3, 2)
    lin.extra = nn.ReLU()                            # a child added to a layer
    refused(lin, tmp_path, "its modules are")
    lin = nn.Linear(3, 2)
    lin.bias = None                                  # a parameter removed
    refused(lin, tmp_path, "state keys")
    lin = nn.Linear(3, 2)
    lin.weight = nn.Parameter(np.zeros((2, 5), np.float32))   # a parameter replaced
    refused(lin, tmp_path, "has shape .*changed after construction")
    a, b = nn.Linear(3, 3), nn.Linear(3, 3)
    b.weight = a.weight                              # tied weights
    refused(nn.Sequential(a, b), tmp_path, "shared")
    mixed = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    mixed[1].double()
    mixed[0].weight.data = mixed[0].weight.data.astype(np.float64)
    refused(mixed, tmp_path, "mixes float dtypes")
    # a replaced layer of a Sequential is the new layer: that rebuilds
    seq = ten_lines()
    seq[2] = nn.Linear(100, 5)
    assert round_trip(seq, tmp_path)[2].out_features == 5


def test_forged_class_names_are_refused(tmp_path):
    path = tmp_path / "m.npz"
    fastnn.save(nn.Sequential(nn.Linear(2, 2)), path)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for name in ("functional", "os", "__builtins__", "Parameter"):
        meta = json.loads(str(arrays[io.META_KEY][()]))
        meta["model"]["rebuild"]["tree"]["children"][0][1]["class"] = name
        np.savez(path, **{**arrays, io.META_KEY: np.array(json.dumps(meta))})
        with pytest.raises(io.CheckpointError, match="not one of fastnn.nn's layers"):
            fastnn.load(path)


def test_models_and_state_dicts_load_as_before(tmp_path):
    mlp = fastnn.models.MLP(4, [5], 2)
    fastnn.save(mlp, tmp_path / "mlp.npz")
    meta = io.read_metadata(tmp_path / "mlp.npz")["model"]
    assert "rebuild" not in meta and "not_rebuildable" not in meta
    assert type(fastnn.load(tmp_path / "mlp.npz")) is fastnn.models.MLP
    sd = ten_lines().state_dict()
    fastnn.save(sd, tmp_path / "sd.npz")
    assert list(fastnn.load(tmp_path / "sd.npz")) == list(sd)



@simulator_script(TEMPORARY_PATH + [
    "import numpy as np, fastnn",
    "from fastnn import nn",
    "m = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))",
    "m.double().to('cuda')",
    "x = np.random.default_rng(0).standard_normal((4, 6))",
    "m.forward(x)",
    "m.eval()",
    "fastnn.save(m, path)",
    "b = fastnn.load(path)",
    "assert b.device == 'cpu' and not b.training",
    "assert type(b[1].running_mean) is np.ndarray",
    "assert b[0].weight.data.dtype == np.float64",
    "np.testing.assert_allclose(b.forward(x), m.forward(x), rtol=1e-12, atol=1e-14)",
    "print('ok')",
])
def test_a_model_saved_on_the_gpu_comes_back_on_the_cpu_under_the_simulator(background_run):
    """As torch.load(..., map_location='cpu'): the arrays are NumPy, the rebuilt model is
    on the host, in its saved dtype and modes, with the GPU model's outputs."""
    assert_script_ok(background_run)


@simulator_script(TEMPORARY_PATH + [
    "import numpy as np, fastnn",
    "from fastnn import device as fd, nn",
    "m = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))",
    "m.double()",
    "x = np.random.default_rng(0).standard_normal((4, 6))",
    "m.forward(x)",
    "m.eval()",
    "fastnn.save(m, path)",
    "for where in ('cuda', 'cuda:0'):",
    "    b = fastnn.load(path, map_location=where)",
    "    assert b.device == 'cuda' and not b.training",
    "    assert fd.is_device_array(b[1].running_mean)",
    "    assert b[0].weight.data.dtype == np.float64",
    "    out = b.forward(fd.namespace('cuda').put(x))",
    "    np.testing.assert_allclose(fd.to_host(out), m.forward(x), rtol=1e-12, atol=1e-14)",
    "kept = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))",
    "kept.double()",
    "assert fastnn.load(path, model=kept, map_location='cuda') is kept",
    "assert kept.device == 'cpu'",
    "fastnn.save(m.state_dict(), path)",
    "sd = fastnn.load(path, map_location='cuda')",
    "assert all(type(v) is np.ndarray for v in sd.values())",
    "print('ok')",
])
def test_map_location_cuda_gives_a_gpu_model_under_the_simulator(background_run):
    """As torch.load(..., map_location='cuda'): the rebuilt model is on the GPU, in its
    saved dtype and modes; a model passed in keeps its device, a dict stays NumPy."""
    assert_script_ok(background_run)


def test_map_location_names_a_device_or_is_ignored(tmp_path):
    """'cpu' and a function (PyTorch's lambda storage, loc: storage) give the CPU
    model; a name that is no device is refused, saying where it came from."""
    m = nn.Sequential(nn.Linear(2, 3))
    fastnn.save(m, tmp_path / "m.npz")
    for where in ("cpu", "cpu:0", lambda storage, loc: storage, {"cuda:0": "cpu"}):
        assert fastnn.load(tmp_path / "m.npz", map_location=where).device == "cpu"
    with pytest.raises(ValueError, match="map_location.*'tpu'"):
        fastnn.load(tmp_path / "m.npz", map_location="tpu")


def _trained(model, x, steps=3):
    """model after a few SGD steps on x (its own loss for the VAE, the outputs' sum
    otherwise): running statistics, dropout and counters as a trained model has them."""
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for _ in range(steps):
        opt.zero_grad()
        if isinstance(model, fastnn.models.VAE):
            model(x)
            model.backward()
        else:
            out = model(x)
            outs = out if isinstance(out, tuple) else (out,)
            model.backward(*[np.ones_like(o) for o in outs])
        opt.step()
    return model


@pytest.mark.parametrize("build,shape", [
    (lambda: fastnn.models.MLP(6, [5, 4], 3, activation="leaky_relu", batchnorm=True,
                               dropout=0.2), (8, 6)),
    (lambda: fastnn.models.SmallCNN(1, 8, 3, channels=(2, 3)), (4, 1, 8, 8)),
    (lambda: fastnn.models.MultiTaskNet(6, 5, 4, 3), (8, 6)),
    (lambda: fastnn.models.VAE(6, 2, hidden=(5,)), (8, 6)),
], ids=["mlp", "cnn", "multitask", "vae"])
def test_trained_config_models_load_without_model(tmp_path, build, shape):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    model = _trained(build(), x)
    loaded = round_trip(model, tmp_path)
    assert type(loaded) is type(model)
    saved, back = model.state_dict(), loaded.state_dict()
    assert list(saved) == list(back)
    for key, value in saved.items():   # (the VAE's generator state is extra state)
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(back[key], value)
        else:
            assert back[key] == value, key


def test_config_models_changed_after_construction_are_refused(tmp_path):
    """fastnn.load(path) rebuilds fastnn.models from their config: a change the config
    does not hold came back as built (a LeakyReLU slope, a replaced activation, an
    appended layer) with no error; it is refused as a Sequential's is, and model= loads
    it."""
    mlp = fastnn.models.MLP(4, [8], 3, activation="leaky_relu")
    mlp[1].negative_slope = 0.5
    refused(mlp, tmp_path, r"'1' \(LeakyReLU\) has negative_slope=0.5 in the saved model "
                           r"but 0.01 when rebuilt")
    twin = fastnn.models.MLP(4, [8], 3, activation="leaky_relu")
    twin[1].negative_slope = 0.5
    assert fastnn.load(tmp_path / "r.npz", model=twin)[1].negative_slope == 0.5
    replaced = fastnn.models.MLP(4, [8], 3)
    replaced[1] = nn.Tanh()
    refused(replaced, tmp_path, r"'1' is a ReLU in the file but a .* when rebuilt|"
                                r"'1' is a Tanh in the file but a ReLU when rebuilt")
    longer = fastnn.models.MLP(4, [8], 3)
    longer.append(nn.Softmax(dim=1))
    refused(longer, tmp_path, "its modules are")
