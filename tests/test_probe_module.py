"""The Module API and containers against torch.nn 2.13: traversal arguments and order
(tied parameters, a module held twice), state dicts (prefix, keep_vars, persistent=False,
hooks, dtype conversion, assign, errors), registration errors, Sequential/ModuleList/
ModuleDict/ParameterList/ParameterDict methods, Identity/Unflatten arguments, lazy hooks."""
import copy
import pickle
from collections import OrderedDict

import numpy as np
import pytest

import fastnn
from fastnn import nn

torch = pytest.importorskip("torch")


def _build(net, lib):
    net.a = lib.Linear(3, 4)
    net.bn = lib.BatchNorm1d(4)
    net.seq = lib.Sequential(lib.Linear(4, 4), lib.ReLU(), lib.Linear(4, 2))
    net.seq[2].weight = net.seq[0].weight  # tied parameter
    net.tied = net.a  # a module held under two names


class Net(nn.Module):  # (module level: pickled)
    def __init__(self):
        super().__init__()
        _build(self, nn)


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        _build(self, torch.nn)


def _net(lib):
    return Net() if lib is nn else TorchNet()


def _names(pairs):
    return [name for name, _ in pairs]


@pytest.mark.parametrize("kwargs", [{}, {"prefix": "pre"}, {"recurse": False},
                                    {"remove_duplicate": False},
                                    {"prefix": "x", "remove_duplicate": False}])
def test_named_parameters_and_buffers_match_torch(kwargs):
    ours, theirs = _net(nn), _net(torch.nn)
    assert (_names(ours.named_parameters(**kwargs))
            == _names(theirs.named_parameters(**kwargs)))
    # num_batches_tracked included: a buffer in both (fastnn's a 0-d int64 host array)
    assert _names(ours.named_buffers(**kwargs)) == _names(theirs.named_buffers(**kwargs))
    recurse = kwargs.get("recurse", True)
    assert len(ours.parameters(recurse=recurse)) == len(list(theirs.parameters(recurse)))


@pytest.mark.parametrize("kwargs", [{}, {"prefix": "p"}, {"remove_duplicate": False},
                                    {"memo": None, "prefix": "m", "remove_duplicate": False}])
def test_named_modules_and_children_match_torch(kwargs):
    ours, theirs = _net(nn), _net(torch.nn)
    assert _names(ours.named_modules(**kwargs)) == _names(theirs.named_modules(**kwargs))
    assert _names(ours.named_children()) == _names(theirs.named_children()) == ["a", "bn",
                                                                                "seq"]
    memo = {ours.seq}
    assert _names(ours.named_modules(memo)) == ["", "a", "bn"] and ours.a in memo


def test_traversals_are_lists_that_next_steps_through_as_torchs_generators():
    ours = _net(nn)
    params = ours.parameters()
    assert next(params) is ours.a.weight and next(params) is ours.a.bias
    assert len(params) == 7 and params[0] is ours.a.weight  # still a list (tied once)
    assert next(ours.modules()) is ours
    assert next(ours.children()) is ours.a
    assert next(ours.named_parameters())[0] == "a.weight"


def test_state_dict_keys_prefix_keep_vars_and_destination_match_torch():
    ours, theirs = _net(nn), _net(torch.nn)
    assert list(ours.state_dict()) == list(theirs.state_dict())  # 'tied.*' too
    assert list(ours.state_dict(prefix="m.")) == list(theirs.state_dict(prefix="m."))
    dest = OrderedDict(z=1)
    assert ours.state_dict(destination=dest) is dest and list(dest)[0] == "z"
    kept = ours.state_dict(keep_vars=True)
    assert kept["a.weight"] is ours.a.weight and kept["bn.running_mean"] is ours.bn.running_mean
    copied = ours.state_dict()
    assert isinstance(copied["a.weight"], np.ndarray)
    assert not np.shares_memory(copied["a.weight"], ours.a.weight.data)


def test_non_persistent_buffers_stay_out_of_the_state_dict():
    ours, theirs = nn.Module(), torch.nn.Module()
    ours.register_buffer("a", np.zeros(3, np.float32), persistent=False)
    theirs.register_buffer("a", torch.zeros(3), persistent=False)
    ours.register_buffer("b", np.ones(2, np.float32))
    theirs.register_buffer("b", torch.ones(2))
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["b"]
    assert _names(ours.named_buffers()) == _names(theirs.named_buffers()) == ["a", "b"]
    assert ours.load_state_dict({"b": np.zeros(2, np.float32)}).missing_keys == []
    with pytest.raises(RuntimeError, match="unexpected keys"):
        ours.load_state_dict({"a": np.zeros(3, np.float32), "b": np.zeros(2, np.float32)})
    clone = copy.deepcopy(ours)
    assert list(clone.state_dict()) == ["b"] and "a" in dict(clone.named_buffers())
    ours.register_buffer("a", np.zeros(3, np.float32))  # persistent again
    assert list(ours.state_dict()) == ["a", "b"]


def test_load_state_dict_converts_dtypes_takes_tensors_and_assigns(rng):
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ours = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    result = ours.load_state_dict(theirs.double().state_dict())  # float64 tensors
    assert repr(result) == "<All keys matched successfully>"
    assert type(result).__name__ == "_IncompatibleKeys"
    assert ours[0].weight.data.dtype == np.float32
    np.testing.assert_allclose(ours[0].weight.data, theirs[0].weight.detach().numpy(),
                               rtol=1e-6)
    state = {k: rng.standard_normal(np.shape(v)) for k, v in ours.state_dict().items()
             if not k.endswith("num_batches_tracked")}  # plain float64 arrays
    ours.load_state_dict(state)
    np.testing.assert_allclose(ours[1].running_var, state["1.running_var"], rtol=1e-6)
    assigned = ours.load_state_dict(state, assign=True)
    assert assigned.missing_keys == [] and ours[0].weight.data is state["0.weight"]
    assert ours[0].weight.dtype == np.float64 and ours[0].weight.grad.dtype == np.float64


def test_load_state_dict_errors_are_runtime_errors_and_change_nothing():
    ours = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    before = ours[0].weight.data.copy()
    state = {k: np.zeros_like(v) for k, v in ours.state_dict().items()}
    for bad, match in [({"0.weight": np.zeros((5, 3), np.float32)}, "size mismatch"),
                       ({"extra": np.zeros(1, np.float32)}, "unexpected keys"),
                       ({"1.bias": [0.0, 0.0]}, "expected a numpy.ndarray")]:
        with pytest.raises(RuntimeError, match=match) as info:
            ours.load_state_dict({**state, **bad})
        assert isinstance(info.value, ValueError)  # (fastnn's earlier type)
    with pytest.raises(RuntimeError, match="size mismatch"):
        ours.load_state_dict({"0.weight": np.zeros((5, 3), np.float32)}, strict=False)
    np.testing.assert_array_equal(ours[0].weight.data, before)
    partial = dict(state)
    del partial["0.bias"]
    partial["zz"] = np.zeros(1)
    result = ours.load_state_dict(partial, strict=False)
    assert (result.missing_keys, result.unexpected_keys) == (["0.bias"], ["zz"])
    with pytest.raises(TypeError, match="Expected state_dict to be dict-like"):
        ours.load_state_dict([1])


def test_tied_modules_round_trip_through_deepcopy_pickle_and_state_dict():
    ours, theirs = _net(nn), _net(torch.nn)
    for clone in (copy.deepcopy(ours), pickle.loads(pickle.dumps(ours))):
        assert clone.seq[2].weight is clone.seq[0].weight and clone.tied is clone.a
        assert clone.a.weight is not ours.a.weight
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    np.testing.assert_array_equal(ours.tied.weight.data, theirs.a.weight.detach().numpy())


def test_state_dict_and_load_hooks_run_as_torchs():
    def run(lib, make):
        calls = []
        model = lib.Sequential(lib.Linear(2, 2))
        model.register_state_dict_pre_hook(lambda m, prefix, kv: calls.append(("pre", prefix)))
        model[0].register_state_dict_pre_hook(lambda m, prefix, kv: calls.append(("pre0",
                                                                                   prefix)))
        model.register_state_dict_post_hook(lambda m, sd, prefix, meta: sd.pop("0.bias")
                                            is None or None)  # (must return None)
        keys = list(model.state_dict())

        def rename(m, sd, prefix, meta, strict, missing, unexpected, errors):
            if "old.weight" in sd:
                sd["0.weight"] = sd.pop("old.weight")
        model.register_load_state_dict_pre_hook(rename)
        model.register_load_state_dict_post_hook(lambda m, keys: keys.missing_keys.clear())
        result = model.load_state_dict({"old.weight": make((2, 2))})
        with pytest.raises(RuntimeError):
            model.load_state_dict({"old.weight": make((2, 2)), "junk": make((1,))})
        return calls, keys, repr(result), float(model[0].weight.data.sum())
    ours = run(nn, lambda s: np.full(s, 2.0, np.float32))
    theirs = run(torch.nn, lambda s: torch.full(s, 2.0))
    assert ours == theirs


def _registration_errors(lib, array, param):
    module = lib.Linear(2, 3)
    calls = [lambda: module.register_buffer("a.b", array()),
             lambda: module.register_buffer("", array()),
             lambda: module.register_buffer(3, array()),
             lambda: module.register_buffer("weight", array()),
             lambda: module.register_buffer("in_features", array()),
             lambda: module.register_buffer("z", [1, 2]),
             lambda: module.register_parameter("a.b", param()),
             lambda: module.register_parameter(3, param()),
             lambda: module.register_parameter("in_features", param()),
             lambda: module.register_parameter("q", array()),
             lambda: module.add_module("a.b", lib.ReLU()),
             lambda: module.add_module("", lib.ReLU()),
             lambda: module.add_module(3, lib.ReLU()),
             lambda: module.add_module("weight", lib.ReLU()),
             lambda: module.add_module("x", 3),
             lambda: module.train("yes"),
             lambda: setattr(module, "weight", array())]
    out = []
    for call in calls:
        try:
            call()
            out.append(None)
        except Exception as err:  # noqa: BLE001 (the type is what is compared)
            out.append(type(err))
    return out


def test_registration_errors_match_torchs_types():
    ours = _registration_errors(nn, lambda: np.zeros(3, np.float32),
                                lambda: nn.Parameter(np.zeros(3, np.float32)))
    theirs = _registration_errors(torch.nn, lambda: torch.zeros(3),
                                  lambda: torch.nn.Parameter(torch.zeros(3)))
    assert ours == theirs
    module = nn.Linear(2, 2)
    module.register_parameter("extra", None)
    module.register_parameter("extra", nn.Parameter(np.ones(2, np.float32)))  # (None: free)
    assert "extra" in dict(module.named_parameters())

    class Early(nn.Module):
        def __init__(self):
            self.plain = 3  # fine before Module.__init__, as in PyTorch
            self.layer = nn.ReLU()
    with pytest.raises(AttributeError, match="before Module.__init__"):
        Early()


def test_sequential_slicing_keeps_names_and_operators_match_torch():
    def make(lib):
        return lib.Sequential(OrderedDict([("a", lib.Linear(2, 3)), ("b", lib.ReLU()),
                                           ("c", lib.Linear(3, 1))]))
    ours, theirs = make(nn), make(torch.nn)
    for index in (slice(1, None), slice(None, None, 2), slice(-2, None)):
        assert list(ours[index]._modules) == list(theirs[index]._modules)
        assert list(ours[index].state_dict()) == list(theirs[index].state_dict())
    joined = ours[:1] + nn.Sequential(nn.Tanh())
    assert list(joined._modules) == ["0", "1"] and joined[0] is ours.a
    grown = nn.Sequential(nn.Linear(1, 1))
    grown += nn.Sequential(nn.ReLU())
    assert list(grown._modules) == ["0", "1"]
    assert len(grown * 1) == 2 and len(1 * grown) == 2
    with pytest.raises(ValueError, match="Non-positive multiplication factor 0"):
        grown * 0
    with pytest.raises(ValueError, match="a layer appears twice"):  # same instances
        grown * 2
    with pytest.raises(ValueError, match="supports only objects of Sequential"):
        grown + 3
    assert "0" not in dir(grown) and "append" in dir(grown)


def test_module_list_and_dict_methods_match_torch():
    def make(lib):
        items = lib.ModuleList([lib.Linear(1, 1), lib.ReLU()])
        items += [lib.Tanh()]
        both = items + lib.ModuleList([lib.Sigmoid()])
        table = lib.ModuleDict(lib.ModuleDict({"q": lib.ReLU()}))
        table.update([("c", lib.Tanh()), ("d", lib.ReLU())])
        return list(items._modules), list(both._modules), list(table), len(items[1:])
    assert make(nn) == make(torch.nn)
    items, table = nn.ModuleList([nn.ReLU()]), nn.ModuleDict()
    for call, error in [(lambda: items.extend(3), TypeError),
                        (lambda: items[5], IndexError),
                        (lambda: table.update(3), TypeError),
                        (lambda: table.update([3]), TypeError),
                        (lambda: table.update([("c", nn.Tanh(), 3)]), ValueError),
                        (lambda: table.__setitem__(1, nn.ReLU()), TypeError),
                        (lambda: table.__setitem__("a.b", nn.ReLU()), KeyError),
                        (lambda: nn.ModuleDict({"training": nn.ReLU()}), KeyError),
                        (lambda: table["missing"], KeyError)]:
        with pytest.raises(error):
            call()


def test_parameter_containers_take_arrays_and_dict_operators_match_torch():
    def make(lib, array):
        plist = lib.ParameterList([lib.Parameter(array((2,)))])
        plist.append(array((3,)))
        plist += [lib.Parameter(array((1,)))]
        pdict = lib.ParameterDict({"b": lib.Parameter(array((2,)))})
        pdict["a"] = array((4,))
        merged = pdict | {"z": lib.Parameter(array((1,))), "y": lib.Parameter(array((1,)))}
        pdict |= {"x": lib.Parameter(array((1,)))}
        return (type(plist[1]).__name__, len(plist), list(plist[1:]._parameters),
                type(pdict["a"]).__name__, list(merged), list(reversed(pdict)))
    assert make(nn, lambda s: np.zeros(s, np.float32)) == make(torch.nn, torch.zeros)
    pdict = nn.ParameterDict({"w": nn.Parameter(np.zeros((2, 3), np.float32))})
    assert repr(pdict) == "ParameterDict(  (w): Parameter containing: [float32 of size 2x3])"
    with pytest.raises(AttributeError):  # PyTorch's type for a missing key (and a KeyError)
        pdict["missing"]
    with pytest.raises(TypeError):
        pdict[3] = nn.Parameter(np.zeros(1, np.float32))


def test_identity_unflatten_repr_and_lazy_hooks():
    assert repr(nn.Identity(54, unused=0.1)) == repr(torch.nn.Identity(54, unused=0.1))
    for bad in (6, (2.0, 3)):
        with pytest.raises(TypeError, match="unflattened_size must be"):
            nn.Unflatten(1, bad)

    class Extra(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.ReLU()

        def extra_repr(self):
            return "a=1\nb=2"
    assert repr(Extra()) == "Extra(\n  a=1\n  b=2\n  (inner): ReLU()\n)"
    seen = []
    lazy = nn.LazyLinear(3)
    lazy.register_forward_hook(lambda module, args, out: seen.append(out.shape))
    x = np.zeros((2, 5), np.float32)
    lazy(x)
    lazy(x)
    assert seen == [(2, 3), (2, 3)] and type(lazy).__name__ == "Linear"
    with pytest.raises(TypeError, match="float16 is not supported"):
        nn.Linear(2, 2).half()
    assert nn.Linear(2, 2)._get_name() == "Linear"
