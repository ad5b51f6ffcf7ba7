"""Module machinery: registration order, state_dict round trips, failed loads changing
nothing, zero_grad/accumulation, modes, dtype conversion, rebinding by an optimizer, repr."""
import collections

import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn

from nn_torch_helpers import torch_twin


def _model():
    fastnn.manual_seed(3)
    return nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(6, 3, bias=False), nn.BatchNorm1d(3, mean_only=True))


def _snapshot(model):
    return ({k: v.copy() for k, v in model.state_dict().items()},
            [p.grad.copy() for p in model.parameters()])


def _assert_unchanged(model, snapshot):
    state, grads = snapshot
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, state[name], err_msg=name)
    for p, g in zip(model.parameters(), grads):
        np.testing.assert_array_equal(p.grad, g)


def test_names_and_order_match_pytorch():
    model = _model()
    names = list(model.state_dict())
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean",
                     "1.running_var", "1.num_batches_tracked", "4.weight", "5.bias",
                     "5.running_mean", "5.num_batches_tracked"]
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "0.bias", "1.weight",
                                                        "1.bias", "4.weight", "5.bias"]
    # num_batches_tracked is a buffer, as PyTorch's (a live 0-d int64 array)
    assert [n for n, _ in model.named_buffers()] == [
        "1.running_mean", "1.running_var", "1.num_batches_tracked", "5.running_mean",
        "5.num_batches_tracked"]
    twin = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6))
    assert names[:7] == list(twin.state_dict())
    assert [n for n, _ in model.named_buffers()][:3] == [n for n, _ in twin.named_buffers()]
    count = model.get_buffer("1.num_batches_tracked")
    assert count.shape == () and count.dtype == np.int64
    count[()] = 5
    assert model[1].num_batches_tracked == 5 and len(list(model.buffers())) == 5


def test_state_dict_holds_copies_and_round_trips(backend, rng):
    model = _model()
    x = rng.standard_normal((8, 4)).astype(np.float32)
    model(x)  # moves the running statistics away from their initial values
    state = model.state_dict()
    state["0.weight"][...] = 99.0
    assert not np.any(model[0].weight.data == 99.0)

    model.eval()
    expected = model(x)
    other = _model()
    for p in other.parameters():
        p.data[...] = 0.5
    result = other.load_state_dict(model.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    other.eval()
    np.testing.assert_array_equal(other(x), expected)


@pytest.mark.parametrize("corrupt", ["shape", "missing", "unexpected", "not_array"])
def test_failed_load_changes_nothing(corrupt):
    model = _model()
    before = _snapshot(model)
    state = {k: np.full_like(v, 7.0) for k, v in model.state_dict().items()}
    if corrupt == "shape":
        state["4.weight"] = np.zeros((2, 2), np.float32)
        match = r"'4.weight': the model has shape \(3, 6\), the state dict has \(2, 2\)"
    elif corrupt == "missing":
        del state["1.running_var"]
        match = r"missing keys \['1.running_var'\]"
    elif corrupt == "unexpected":
        state["9.weight"] = np.zeros(3, np.float32)
        match = r"unexpected keys \['9.weight'\]"
    else:
        state["0.bias"] = [0.0] * 6
        match = "'0.bias': expected a numpy.ndarray, got list"
    with pytest.raises(ValueError, match=match):
        model.load_state_dict(state)
    _assert_unchanged(model, before)


def test_non_strict_load_skips_missing_and_unexpected():
    model = _model()
    result = model.load_state_dict({"0.bias": np.ones(6, np.float32), "zzz": np.ones(1)},
                                   strict=False)
    np.testing.assert_array_equal(model[0].bias.data, 1.0)
    assert result.unexpected_keys == ["zzz"] and "0.weight" in result.missing_keys


def test_gradients_accumulate_until_zero_grad_in_place(backend, rng):
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x = rng.standard_normal((5, 3)).astype(np.float32)
    g = rng.standard_normal((5, 2)).astype(np.float32)
    grads = [p.grad for p in model.parameters()]
    model(x)
    model.backward(g)
    once = [gr.copy() for gr in grads]
    model(x)
    model.backward(g)
    for p, gr, o in zip(model.parameters(), grads, once):
        assert p.grad is gr  # written in place, never rebound
        np.testing.assert_allclose(gr, 2 * o, rtol=1e-5, atol=1e-7)
    model.zero_grad()
    for p, gr in zip(model.parameters(), grads):
        assert p.grad is gr and not gr.any()


def test_layers_read_rebound_parameter_views(backend, rng):
    """An optimizer may move .data/.grad into one flat buffer; layers must follow."""
    layer = nn.Linear(3, 2)
    flat_data = np.zeros(8, np.float32)
    flat_grad = np.zeros(8, np.float32)
    flat_data[:6] = layer.weight.data.ravel()
    flat_data[6:] = layer.bias.data
    layer.weight.data, layer.weight.grad = flat_data[:6].reshape(2, 3), flat_grad[:6].reshape(2, 3)
    layer.bias.data, layer.bias.grad = flat_data[6:], flat_grad[6:]
    flat_data[6:] = 10.0
    x = rng.standard_normal((4, 3)).astype(np.float32)
    y = layer(x)
    np.testing.assert_allclose(y, x @ flat_data[:6].reshape(2, 3).T + 10.0, rtol=1e-6)
    layer.backward(np.ones_like(y))
    np.testing.assert_allclose(flat_grad[6:], 4.0)
    np.testing.assert_allclose(flat_grad[:6].reshape(2, 3), np.ones((2, 4)) @ x, rtol=1e-6)


def test_train_and_eval_are_recursive():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(), nn.BatchNorm1d(2)))
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())
    assert len(model.modules()) == 5


def test_double_and_float_convert_parameters_buffers_and_grads(backend, rng):
    model = _model()
    model.double()
    for p in model.parameters():
        assert p.data.dtype == np.float64 and p.grad.dtype == np.float64
    # the float buffers convert; num_batches_tracked stays int64, as PyTorch's
    assert [b.dtype for b in model.buffers()] == [np.float64, np.float64, np.int64,
                                                  np.float64, np.int64]
    y = model(rng.standard_normal((4, 4)))
    assert y.dtype == np.float64
    model.float()
    assert all(p.data.dtype == np.float32 for p in model.parameters())
    with pytest.raises(TypeError, match="expected float32 or float64, got int32"):
        model.to_dtype(np.int32)


def test_to_takes_a_dtype_or_a_device_and_a_dtype_as_in_pytorch(backend, rng):
    model = _model()
    assert model.to(np.float64) is model
    assert all(p.data.dtype == np.float64 for p in model.parameters())
    assert all(b.dtype == np.float64 for b in model.buffers() if b.dtype.kind == "f")
    assert model(rng.standard_normal((4, 4))).dtype == np.float64
    model.to("cpu", "float32")
    assert all(p.grad.dtype == np.float32 for p in model.parameters())
    model.to(dtype=np.float64)
    assert model[0].weight.data.dtype == np.float64 and model.device == "cpu"
    with pytest.raises(TypeError, match="expected float32 or float64, got int32"):
        model.to(np.int32)
    with pytest.raises(TypeError, match="expected a device"):
        model.to()
    with pytest.raises(ValueError, match="expected device 'cpu' or 'cuda', got 'gpu'"):
        model.to("gpu")


def test_softmax_takes_pytorchs_dim_for_the_class_axis(rng):
    x = rng.standard_normal((3, 5)).astype(np.float32)
    expected = nn.Softmax()(x)
    for dim in (1, -1, None):
        np.testing.assert_array_equal(nn.Softmax(dim=dim)(x), expected)
    with pytest.raises(ValueError, match="dim 2 is out of range"):
        nn.Softmax(dim=2)(x)


def test_zero_grad_accepts_set_to_none(backend, rng):
    model = _model()
    opt = fastnn.optim.SGD(model.parameters(), lr=0.1)
    model(rng.standard_normal((4, 4)).astype(np.float32))
    model.backward(np.ones((4, 3), np.float32))
    opt.zero_grad(set_to_none=True)
    model.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())


def test_manual_seed_makes_initialisation_reproducible():
    fastnn.manual_seed(11)
    a = nn.Linear(50, 40)
    fastnn.manual_seed(11)
    b = nn.Linear(50, 40)
    c = nn.Linear(50, 40)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    assert not np.array_equal(b.weight.data, c.weight.data)


def test_linear_initialisation_follows_pytorch():
    """kaiming_uniform(a=sqrt(5)): weight and bias U(-1/sqrt(in), 1/sqrt(in))."""
    fastnn.manual_seed(0)
    layer = nn.Linear(400, 300)
    bound = 1 / np.sqrt(400)
    w, b = layer.weight.data, layer.bias.data
    assert w.shape == (300, 400) and b.shape == (300,) and w.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.01 * bound
    ref = torch.nn.Linear(400, 300).weight.detach().numpy()
    assert abs(w.std() - ref.std()) < 0.01 * bound


def test_repr_of_every_layer():
    assert repr(nn.Linear(3, 2)) == "Linear(in_features=3, out_features=2, bias=True)"
    assert repr(nn.LeakyReLU(0.2)) == "LeakyReLU(negative_slope=0.2)"
    assert repr(nn.Sine(30.0)) == "Sine(omega=30.0)"
    assert repr(nn.Dropout(0.1)) == repr(torch.nn.Dropout(0.1)) == "Dropout(p=0.1, inplace=False)"
    assert repr(nn.BatchNorm1d(4, mean_only=True)) == \
        "BatchNorm1d(4, eps=1e-05, momentum=0.1, mean_only=True)"
    assert repr(nn.BatchNorm2d(8)) == repr(torch.nn.BatchNorm2d(8))
    assert repr(nn.BatchNorm1d(3, affine=False, track_running_stats=False)) == repr(
        torch.nn.BatchNorm1d(3, affine=False, track_running_stats=False))
    for args, kwargs in [((1, 3, 2), {}), ((1, 4, 3), dict(padding="same", dilation=2,
                                                          bias=False, padding_mode="reflect")),
                         ((2, 4, 3), dict(padding=1, groups=2, stride=2)),
                         ((1, 2, 3), dict(padding="valid"))]:
        assert repr(nn.Conv2d(*args, **kwargs)) == repr(torch.nn.Conv2d(*args, **kwargs))
        assert repr(nn.Conv1d(*args, **kwargs)) == repr(torch.nn.Conv1d(*args, **kwargs))
    assert repr(nn.Flatten()) == "Flatten(start_dim=1, end_dim=-1)"
    for cls in (nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Identity):
        assert repr(cls()) == f"{cls.__name__}()"
    assert repr(nn.GELU()) == repr(torch.nn.GELU()) == "GELU(approximate='none')"
    assert (repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"
            and repr(nn.Softmax()) == "Softmax(dim=None)")
    for cls in (nn.MSELoss, nn.CrossEntropyLoss, nn.BCELoss):
        assert repr(cls()) == f"{cls.__name__}()"
    assert repr(nn.Sequential(nn.Linear(1, 1), nn.ReLU())) == (
        "Sequential(\n  (0): Linear(in_features=1, out_features=1, bias=True)\n"
        "  (1): ReLU()\n)")
    # PyTorch's "Parameter containing:" and the values (was the shape and dtype alone)
    assert repr(nn.Parameter(np.zeros((2, 3)))) == (
        "Parameter containing:\narray([[0., 0., 0.],\n       [0., 0., 0.]])")
    assert repr(nn.Parameter(np.ones(2, np.float32), requires_grad=False)) == (
        "Parameter containing:\narray([1., 1.], dtype=float32, requires_grad=False)")
    assert "..." in repr(nn.Parameter(np.zeros((100, 100))))   # (summarised, as NumPy's)


def test_torch_twin_of_a_loaded_model_agrees(backend, rng):
    """state_dict values are what PyTorch would hold: a twin built from them matches."""
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2))
    model(rng.standard_normal((6, 4)).astype(np.float32))
    model.eval()
    twin = torch_twin(model).eval()
    x = rng.standard_normal((3, 4)).astype(np.float32)
    with torch.no_grad():
        expected = twin(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(model(x), expected, rtol=1e-5, atol=1e-6)


def test_calling_a_loss_subclass_runs_its_forward(backend, rng):
    class Scaled(nn.MSELoss):
        def forward(self, pred, target):
            return 10 * super().forward(pred, target)

    pred = rng.standard_normal(4).astype(np.float32)
    target = np.zeros(4, np.float32)
    assert Scaled()(pred, target) == pytest.approx(10 * nn.MSELoss()(pred, target))


def test_fastnn_gradcheck_is_callable_after_importing_its_module(backend, rng):
    from fastnn.gradcheck import GradcheckError  # binds fastnn.gradcheck to the module
    assert issubclass(GradcheckError, AssertionError)
    assert fastnn.gradcheck(nn.Tanh(), rng.standard_normal((2, 3))) is True


class _ListNet(nn.Module):
    """A user model holding its layers in a ModuleList, with its own forward/backward."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(3, 4), nn.ReLU()])
        self.layers.append(nn.Linear(4, 2))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, grad):
        for layer in reversed(list(self.layers)):
            grad = layer.backward(grad)
        return grad


def test_module_list_named_modules_and_apply_follow_pytorch(backend, rng):
    ours = _ListNet()
    theirs = torch.nn.Module()
    theirs.layers = torch.nn.ModuleList([torch.nn.Linear(3, 4), torch.nn.ReLU(),
                                         torch.nn.Linear(4, 2)])
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    assert len(ours.layers) == 3 and isinstance(ours.layers[2], nn.Linear)
    assert len(ours.parameters()) == 4
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    x = rng.standard_normal((5, 3)).astype(np.float32)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    yt = theirs.layers[2](theirs.layers[1](theirs.layers[0](xt)))
    yt.sum().backward()
    np.testing.assert_allclose(ours(x), yt.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.backward(np.ones((5, 2), np.float32)), xt.grad.numpy(),
                               rtol=1e-5, atol=1e-6)
    order, torch_order = [], []
    assert ours.apply(lambda m: order.append(type(m).__name__)) is ours
    theirs.apply(lambda m: torch_order.append(type(m).__name__))
    assert order[:-1] == torch_order[:-1] and order[-1] == "_ListNet"
    with pytest.raises(TypeError, match="ModuleList: expected a Module, got int"):
        nn.ModuleList([1])
    with pytest.raises(NotImplementedError, match="ModuleList has no forward"):
        ours.layers(x)


def test_requires_grad_freezes_a_layer_for_the_optimizer(backend, rng):
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    assert model[0].requires_grad_(False) is model[0]
    assert [p.requires_grad for p in model.parameters()] == [False, False, True, True]
    frozen = [p.data.copy() for p in model[0].parameters()]
    trained = model[2].weight.data.copy()
    opt = fastnn.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        model(rng.standard_normal((3, 4)).astype(np.float32))
        model.backward(np.ones((3, 2), np.float32))
        opt.step()
    for p, before in zip(model[0].parameters(), frozen):
        np.testing.assert_array_equal(p.data, before)
    assert not np.array_equal(model[2].weight.data, trained)
    model.requires_grad_()
    assert all(p.requires_grad for p in model.parameters())


def _dict_net(lib):
    """A model with heads in a ModuleDict, a scale per head in a ParameterDict and offsets
    in a ParameterList (PyTorch's containers), built from fastnn.nn or torch.nn."""
    model = lib.Module()
    model.trunk = lib.Linear(3, 4)
    model.heads = lib.ModuleDict({"digit": lib.Linear(4, 10), "parity": lib.Linear(4, 2)})
    model.scales = lib.ParameterDict({"digit": lib.Parameter(_ones(lib, 10)),
                                      "parity": lib.Parameter(_ones(lib, 2))})
    model.offsets = lib.ParameterList([lib.Parameter(_ones(lib, 4)) for _ in range(2)])
    return model


def _ones(lib, n):
    return np.ones(n, np.float32) if lib is nn else torch.ones(n)


def test_module_dict_and_parameter_containers_follow_pytorch():
    ours, theirs = _dict_net(nn), _dict_net(torch.nn)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in theirs.named_modules()]
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    assert list(ours.heads) == ["digit", "parity"] and "digit" in ours.heads
    assert len(ours.scales) == 2 and len(ours.offsets) == 2
    assert [k for k, _ in ours.heads.items()] == list(ours.heads.keys())
    opt = fastnn.optim.SGD(ours.parameters(), lr=0.1)
    assert len(opt.param_groups[0]["params"]) == len(list(theirs.parameters())) == 10
    del ours.heads["parity"]
    del theirs.heads["parity"]
    ours.heads["extra"] = nn.Linear(4, 1)
    theirs.heads["extra"] = torch.nn.Linear(4, 1)
    ours.offsets.append(nn.Parameter(np.zeros(4, np.float32)))
    theirs.offsets.append(torch.nn.Parameter(torch.zeros(4)))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert ours.scales.pop("parity").shape == (2,) and list(ours.scales) == ["digit"]
    with pytest.raises(TypeError, match="ModuleDict: expected a Module, got int"):
        ours.heads["bad"] = 3
    with pytest.raises(TypeError, match="ParameterList: expected a Parameter, got ReLU"):
        nn.ParameterList([nn.ReLU()])  # (a plain array is made a Parameter, as PyTorch's)
    with pytest.raises(NotImplementedError, match="ModuleDict has no forward"):
        ours.heads(np.zeros((1, 4), np.float32))


def test_errors_name_a_container_by_its_children_not_as_an_empty_one():
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    with pytest.raises(RuntimeError, match=r"^Sequential\(Linear, ReLU\): backward called "
                                           r"before forward"):
        model.backward(np.ones((2, 3)))
    wide = nn.Sequential(*[nn.ReLU() for _ in range(8)])
    assert wide._where() == "Sequential(ReLU, ReLU, ReLU, ReLU, ReLU, ReLU, ...)"


def test_a_module_list_subclass_plus_a_list_is_a_plain_module_list():
    """PyTorch's ModuleList.__add__ builds a ModuleList; fastnn's called the subclass's
    constructor with the joined list, which a subclass taking other arguments (a depth)
    refused or misread."""
    class Blocks(nn.ModuleList):
        def __init__(self, depth):
            super().__init__([nn.Linear(2, 2) for _ in range(depth)])

    both = Blocks(2) + [nn.ReLU()]
    assert type(both) is nn.ModuleList
    assert [type(m).__name__ for m in both] == ["Linear", "Linear", "ReLU"]
    params = nn.ParameterList([np.zeros(2, np.float32)]) + [np.ones(1, np.float32)]
    assert type(params) is nn.ParameterList and len(params) == 2


def test_parameter_containers_hold_other_objects_as_pytorchs():
    """PyTorch's ParameterList and ParameterDict hold objects that are not tensors (None
    for a layer without bias, a number) as plain attributes, outside parameters() and
    the state dict, with their own place in the container and repr; fastnn's refused
    them (TypeError)."""
    def containers(m, zeros):
        class Owner(m.Module):
            def __init__(self):
                super().__init__()
                self.biases = m.ParameterList([m.Parameter(zeros(2)), None, 3])
                self.extra = m.ParameterDict(collections.OrderedDict(
                    [("scale", m.Parameter(zeros(2))), ("shift", None), ("name", "x")]))
        return Owner()

    ours = containers(nn, lambda n: np.zeros(n, np.float32))
    theirs = containers(torch.nn, torch.zeros)
    for model, ones in ((ours, lambda n: np.ones(n, np.float32)), (theirs, torch.ones)):
        model.biases[1] = ones(2)   # None's place takes a parameter
        model.extra["shift"] = ones(2)
        model.extra["scale"] = None
        del model.extra["name"]
    assert [k for k, _ in ours.named_parameters()] == \
        [k for k, _ in theirs.named_parameters()] == ["biases.0", "biases.1", "extra.shift"]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert list(ours.extra) == list(theirs.extra) == ["scale", "shift"]
    assert ours.extra["scale"] is None and ours.biases[2] == 3
    assert repr(ours) == repr(theirs).replace("torch.", "").replace("FloatTensor", "float32")
    assert ours.extra.popitem()[0] == "shift" and list(ours.extra) == ["scale"]


def test_to_takes_pytorchs_float_dtypes():
    """model.to(torch.float64) in ported code read the dtype as a device ("expected device
    'cpu' or 'cuda', got torch.float64"); PyTorch's two float dtypes now convert, others
    are named in the dtype error."""
    torch = pytest.importorskip("torch")
    layer = nn.Linear(3, 2)
    assert layer.to(torch.float64).weight.dtype == np.float64
    assert layer.to(dtype=torch.float32).weight.dtype == np.float32
    assert layer.to("cpu", torch.float64).weight.dtype == np.float64
    for bad in (torch.float16, torch.int64):
        with pytest.raises(TypeError, match=f"expected float32 or float64, got {bad}"):
            layer.to(bad)
    assert layer.weight.dtype == np.float64
