"""Lazy layers: the input size from the first input, the module becoming the regular
layer, against PyTorch's lazy layers (outputs and gradients after a dry run), and the
errors and conversions around them."""
import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn, optim

from fastnn.nn.lazy import LazyConv3d, LazyConvTranspose3d

from conftest import assert_close

torch.set_num_threads(2)


def _cnn(m):
    return m.Sequential(m.LazyConv2d(4, 3, padding=1), m.LazyBatchNorm2d(), m.ReLU(),
                        m.LazyConvTranspose2d(3, 2, stride=2), m.Flatten(), m.LazyLinear(6),
                        m.ReLU(), m.LazyLinear(2))


def _seq1d(m):
    return m.Sequential(m.LazyConv1d(5, 3, groups=1), m.LazyBatchNorm1d(), m.Tanh(),
                        m.LazyConvTranspose1d(2, 3, stride=2, output_padding=1))


def _instance(m):
    return m.Sequential(m.LazyConv2d(4, 3), m.LazyInstanceNorm2d(), m.ReLU(), m.Flatten(),
                        m.LazyLinear(2))


@pytest.mark.parametrize("build, shape", [(_cnn, (3, 2, 5, 5)), (_seq1d, (4, 3, 9)),
                                          (_instance, (2, 3, 6, 6))],
                         ids=["cnn", "conv1d", "instance_norm"])
def test_lazy_models_become_regular_and_match_torch(dtype, rng, build, shape):
    ours, theirs = build(nn), build(torch.nn).to(
        torch.float64 if dtype == np.float64 else torch.float32)
    if dtype == np.float64:
        ours.double()  # before the parameters exist: they are made in float64
    x = rng.standard_normal(shape).astype(dtype)
    y = ours(x)  # the dry run
    assert not any(type(layer).__name__.startswith("Lazy") for layer in ours)
    assert all(p.data.dtype == dtype for p in ours.parameters())
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    theirs(tx)  # torch's dry run
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                            ours.state_dict().items()})  # strict: the same keys
    assert list(theirs.state_dict()) == list(ours.state_dict())
    ty = theirs(tx)
    assert_close(ours(x), ty.detach().numpy(), dtype, 10)
    g = rng.standard_normal(y.shape).astype(dtype)
    ty.backward(torch.from_numpy(g))
    assert_close(ours.backward(g), tx.grad.numpy(), dtype, 10)
    params = dict(ours.named_parameters())
    for name, p in theirs.named_parameters():
        assert_close(params[name].grad, p.grad.numpy(), dtype, 30, err_msg=name)


def test_lazy_reprs_are_torch_reprs_before_and_after():
    assert repr(nn.LazyLinear(10)) == repr(torch.nn.LazyLinear(10))
    assert repr(nn.LazyConvTranspose2d(4, 2, stride=2)) == repr(
        torch.nn.LazyConvTranspose2d(4, 2, stride=2))
    assert repr(nn.LazyConv2d(16, 3, padding=1)) == repr(torch.nn.LazyConv2d(16, 3, padding=1))
    assert repr(nn.LazyBatchNorm1d()) == repr(torch.nn.LazyBatchNorm1d())
    assert repr(nn.LazyInstanceNorm3d()) == repr(torch.nn.LazyInstanceNorm3d())
    layer = nn.LazyLinear(3)
    layer(np.zeros((2, 7), np.float32))
    assert repr(layer) == "Linear(in_features=7, out_features=3, bias=True)"
    assert isinstance(layer, nn.Linear) and type(layer) is nn.Linear


def test_parameters_before_a_dry_run_are_an_error_and_after_it_train():
    fastnn.manual_seed(0)  # (the loss's fall does not depend on the tests run before)
    model = nn.Sequential(nn.LazyLinear(8), nn.ReLU(), nn.Linear(8, 2))
    with pytest.raises(RuntimeError, match="dry run"):
        optim.SGD(model.parameters(), lr=0.1)
    model.zero_grad()  # fine: nothing to zero yet
    x = np.random.default_rng(0).standard_normal((16, 5)).astype(np.float32)
    target = np.arange(16) % 2
    model(x)
    opt = optim.SGD(model.parameters(), lr=0.5)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for _ in range(60):
        opt.zero_grad()
        losses.append(loss_fn(model(x), target))
        model.backward(loss_fn.backward())
        opt.step()
    assert losses[-1] < 0.5 * losses[0]


def test_a_state_dict_makes_the_parameters():
    trained = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(),
                            nn.Linear(16, 2))
    lazy = nn.Sequential(nn.LazyConv2d(4, 3), nn.LazyBatchNorm2d(), nn.Flatten(),
                         nn.LazyLinear(2))
    lazy.load_state_dict(trained.state_dict())
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(lazy(x), trained(x))
    grouped = nn.LazyConv2d(4, 3, groups=2)
    grouped.load_state_dict(nn.Conv2d(6, 4, 3, groups=2).state_dict())
    assert grouped.in_channels == 6


def test_bad_lazy_inputs_and_arguments():
    with pytest.raises(ValueError):
        nn.LazyConv2d(4, 3, groups=3)  # checked when built, as PyTorch does
    with pytest.raises(ValueError):
        nn.LazyLinear(-1)
    with pytest.raises(ValueError, match="input size"):
        nn.LazyBatchNorm2d()(np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="input size"):
        nn.LazyConv2d(4, 3)(np.zeros((1, 0, 5, 5), np.float32))


class _Lazy3d:
    """fastnn's namespace for the model builders, with the 3-d lazy layers (not yet
    exported from fastnn.nn)."""

    Sequential, ReLU, LazyConv3d, LazyConvTranspose3d = (
        nn.Sequential, nn.ReLU, LazyConv3d, LazyConvTranspose3d)


def _vol(m):
    return m.Sequential(m.LazyConv3d(4, 3, padding=1), m.ReLU(),
                        m.LazyConvTranspose3d(3, 2, stride=2, output_padding=1, dilation=2))


def _vol_grouped(m):
    return m.Sequential(m.LazyConv3d(4, (1, 2, 3), stride=(2, 1, 1), padding=(0, 1, 1),
                                     dilation=(1, 2, 1), groups=2, padding_mode="reflect"),
                        m.LazyConvTranspose3d(6, (2, 1, 2), stride=(1, 2, 2), padding=(0, 0, 1),
                                              groups=2, bias=False))


@pytest.mark.parametrize("build, shape", [(_vol, (2, 3, 3, 4, 3)),
                                          (_vol_grouped, (2, 4, 3, 4, 5)), (_vol, (3, 2, 3, 4))],
                         ids=["conv3d", "grouped", "unbatched"])
def test_lazy_3d_convolutions_become_regular_and_match_torch(dtype, rng, build, shape):
    ours, theirs = build(_Lazy3d), build(torch.nn).to(
        torch.float64 if dtype == np.float64 else torch.float32)
    if dtype == np.float64:
        ours.double()
    x = rng.standard_normal(shape).astype(dtype)
    y = ours(x)  # the dry run
    assert [type(layer).__name__ for layer in ours] == [
        type(layer).__name__.replace("Lazy", "") for layer in build(_Lazy3d)]
    assert all(p.data.dtype == dtype for p in ours.parameters())
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    theirs(tx)  # torch's dry run
    assert list(theirs.state_dict()) == list(ours.state_dict())
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in
                            ours.state_dict().items()})
    assert [repr(a) for a in ours] == [repr(b) for b in theirs]
    ty = theirs(tx)
    assert_close(y, ty.detach().numpy(), dtype, 10)
    g = rng.standard_normal(y.shape).astype(dtype)
    ty.backward(torch.from_numpy(g))
    assert_close(ours.backward(g), tx.grad.numpy(), dtype, 10)
    params = dict(ours.named_parameters())
    assert list(params) == [name for name, _ in theirs.named_parameters()]
    for name, p in theirs.named_parameters():
        assert_close(params[name].grad, p.grad.numpy(), dtype, 30, err_msg=name)


def test_lazy_conv_transpose3d_dry_run_with_output_size():
    ours = LazyConvTranspose3d(2, 3, stride=2)
    theirs = torch.nn.LazyConvTranspose3d(2, 3, stride=2)
    x = np.random.default_rng(2).standard_normal((1, 3, 2, 2, 2)).astype(np.float32)
    y = ours(x, output_size=[6, 5, 6])
    assert y.shape == tuple(theirs(torch.from_numpy(x), output_size=[6, 5, 6]).shape)
    assert type(ours).__name__ == "ConvTranspose3d" and ours(x).shape == (1, 2, 5, 5, 5)


def test_lazy_3d_reprs_parameters_and_state_dicts():
    for args, kwargs in [((16, 3), dict(padding=1)), ((4, (1, 2, 3)), dict(padding="same")),
                         ((4, 3), dict(stride=2, dilation=2, groups=2, bias=False,
                                       padding_mode="circular"))]:
        assert repr(LazyConv3d(*args, **kwargs)) == repr(torch.nn.LazyConv3d(*args, **kwargs))
    kwargs = dict(stride=2, padding=1, output_padding=1, groups=2, bias=False, dilation=2)
    assert repr(LazyConvTranspose3d(4, 3, **kwargs)) == repr(
        torch.nn.LazyConvTranspose3d(4, 3, **kwargs))
    model = nn.Sequential(LazyConv3d(4, 3), nn.ReLU(), LazyConvTranspose3d(2, 2))
    with pytest.raises(RuntimeError, match="dry run"):
        optim.SGD(model.parameters(), lr=0.1)
    model(np.zeros((1, 3, 4, 4, 4), np.float32))
    assert repr(model[0]) == "Conv3d(3, 4, kernel_size=(3, 3, 3), stride=(1, 1, 1))"
    assert type(model[2]) is nn.ConvTranspose3d and model[2].in_channels == 4
    optim.SGD(model.parameters(), lr=0.1)
    assert [name for name, _ in model.named_parameters()] == [
        "0.weight", "0.bias", "2.weight", "2.bias"]
    for lazy, trained in [(LazyConv3d(4, 3, groups=2), nn.Conv3d(6, 4, 3, groups=2)),
                          (LazyConvTranspose3d(4, 3, groups=2),
                           nn.ConvTranspose3d(6, 4, 3, groups=2))]:
        lazy.load_state_dict(trained.state_dict())
        assert type(lazy) is type(trained) and lazy.in_channels == 6
        x = np.random.default_rng(1).standard_normal((2, 6, 3, 3, 3)).astype(np.float32)
        np.testing.assert_array_equal(lazy(x), trained(x))


def test_bad_lazy_3d_inputs_and_arguments():
    with pytest.raises(ValueError):
        LazyConv3d(4, 3, groups=3)
    with pytest.raises(ValueError, match="output padding"):   # (at forward, as PyTorch's)
        LazyConvTranspose3d(4, 2, stride=2, output_padding=2)(np.zeros((1, 3, 2, 2, 2),
                                                                       np.float32))
    with pytest.raises(ValueError):
        LazyConv3d(4, 3, padding="same", stride=2)
    layer = LazyConv3d(4, 3)
    with pytest.raises(ValueError, match="input size"):
        layer(np.zeros((3, 4, 4), np.float32))
    assert type(layer) is LazyConv3d  # still lazy after a refused input
    with pytest.raises(ValueError):
        LazyConvTranspose3d(4, 3, groups=2)(np.zeros((1, 3, 2, 2, 2), np.float32))


def test_a_strict_load_misses_the_arrays_of_a_lazy_layer_not_saved():
    """PyTorch's lazy layer lists its uninitialised parameters and buffers, so a state
    dict without them is missing keys (strict: an error, not a layer left without
    weights)."""
    import torch
    sd = {"0.weight": np.zeros((4, 5), np.float32), "0.bias": np.zeros(4, np.float32)}
    model = nn.Sequential(nn.LazyLinear(4), nn.ReLU(), nn.LazyLinear(2))
    with pytest.raises(ValueError, match=r"missing keys \['2.weight', '2.bias'\]"):
        model.load_state_dict(sd)
    for make, tmake, saved in (
            (lambda: nn.Sequential(nn.LazyLinear(4), nn.ReLU(), nn.LazyLinear(2)),
             lambda: torch.nn.Sequential(torch.nn.LazyLinear(4), torch.nn.ReLU(),
                                         torch.nn.LazyLinear(2)), sd),
            (lambda: nn.Sequential(nn.LazyBatchNorm1d()),
             lambda: torch.nn.Sequential(torch.nn.LazyBatchNorm1d()), {})):
        ours = make().load_state_dict(saved, strict=False)
        theirs = tmake().load_state_dict({k: torch.tensor(v) for k, v in saved.items()},
                                         strict=False)
        assert ours.missing_keys == theirs.missing_keys


def test_a_saved_bias_without_its_weight_is_not_an_unexpected_key_of_a_lazy_layer():
    """A LazyLinear's bias does not give its input size, so a state dict with the bias
    but no weight leaves the layer lazy: both names are missing (the bias could not be
    loaded), and the bias, a name the layer has, was listed as unexpected too."""
    src = nn.LazyLinear(5)
    src(np.ones((2, 3), np.float32))
    saved = {"bias": src.state_dict()["bias"]}
    dst = nn.LazyLinear(5)
    result = dst.load_state_dict(saved, strict=False)
    assert result.unexpected_keys == []
    assert sorted(result.missing_keys) == ["bias", "weight"]
    assert dst.has_uninitialized_params()
    with pytest.raises(ValueError, match=r"missing keys \['weight', 'bias'\]$"):
        dst.load_state_dict(saved)


def test_a_checkpoint_loads_into_a_lazy_model_as_its_state_dict_does(tmp_path):
    """fastnn.load(path, model=lazy) refused the file ('unexpected keys': a lazy layer
    has no arrays yet) where model.load_state_dict(fastnn.load(path)) makes them."""
    x = np.ones((2, 3), np.float32)
    model = nn.Sequential(nn.LazyLinear(4), nn.ReLU(), nn.LazyLinear(2))
    model(x)
    path = tmp_path / "lazy.npz"
    fastnn.save(model, path)
    lazy = nn.Sequential(nn.LazyLinear(4), nn.ReLU(), nn.LazyLinear(2))
    assert fastnn.load(path, model=lazy) is lazy
    assert type(lazy[0]) is nn.Linear and lazy[0].in_features == 3
    np.testing.assert_array_equal(lazy(x), model(x))


def test_a_model_saved_before_its_lazy_layers_saw_an_input_loads_still_lazy(tmp_path):
    """torch.save keeps a lazy layer that has not seen an input; fastnn.save refused
    the model (its parameters were asked for) and load called the absent arrays
    missing keys. Now it saves, and loads (rebuilt or into model=) still lazy, with the
    other layers' arrays (and, rebuilt, the training flags) as saved."""
    model = nn.Sequential(nn.LazyLinear(4), nn.ReLU(), nn.Linear(4, 2)).eval()
    path = tmp_path / "unmade.npz"
    fastnn.save(model, path)
    rebuilt = fastnn.load(path)
    assert rebuilt.training is False and rebuilt[0].training is False
    for loaded in (rebuilt, fastnn.load(path, model=nn.Sequential(
            nn.LazyLinear(4), nn.ReLU(), nn.Linear(4, 2)))):
        assert type(loaded[0]) is nn.LazyLinear and loaded[0].has_uninitialized_params()
        np.testing.assert_array_equal(loaded[2].weight, model[2].weight)
        x = np.ones((5, 7), np.float32)
        assert loaded(x).shape == (5, 2) and loaded[0].in_features == 7
    with pytest.raises(ValueError, match="missing keys"):   # a made layer still needs them
        fastnn.load(path, model=nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)))


def test_requires_grad_before_a_dry_run_is_an_error_as_in_pytorch():
    """PyTorch's requires_grad_ on a lazy layer's uninitialised parameters raises
    ValueError; fastnn's skipped the layer, so its parameters, made at the dry run,
    trained although the model had been frozen."""
    model = nn.Sequential(nn.Linear(3, 4), nn.LazyLinear(2))
    with pytest.raises(ValueError, match="until it sees an input"):
        model.requires_grad_(False)
    assert model[0].weight.requires_grad  # nothing changed
    model(np.ones((2, 3), np.float32))
    assert not any(p.requires_grad for p in model.requires_grad_(False).parameters())


def test_a_double_model_saved_before_its_lazy_layer_saw_an_input_comes_back_float64(tmp_path):
    """The rebuild recipe took a layer's dtype from its arrays, and a lazy layer that has
    not run has none: a .double() model came back with a float32 lazy layer, which then
    refused float64 input."""
    model = nn.Sequential(nn.Linear(3, 4), nn.LazyLinear(2)).double()
    fastnn.save(model, tmp_path / "m.npz")
    loaded = fastnn.load(tmp_path / "m.npz")
    assert loaded[1].has_uninitialized_params()
    y = loaded(np.ones((2, 3)))
    assert y.dtype == np.float64 and loaded[1].weight.dtype == np.float64
    fastnn.save(nn.Sequential(nn.LazyLinear(2)), tmp_path / "f.npz")   # float32 stays
    assert fastnn.load(tmp_path / "f.npz")(np.ones((2, 3), np.float32)).dtype == np.float32
