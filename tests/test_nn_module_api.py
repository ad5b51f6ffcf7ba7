"""Module API against PyTorch's: get/set_submodule, get_parameter/get_buffer (paths and
errors), forward and full backward hooks (call order, replacement, removal, handles,
Linear + activation fusion turned off for hooked layers), extra state in state_dict,
type(), and the Sequential / ModuleList / ParameterDict editing methods."""
import gc
import weakref
from collections import OrderedDict

import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn
from fastnn.nn.module import RemovableHandle

from conftest import assert_close
from nn_torch_helpers import torch_twin


def _twins(dtype, *layers):
    """A fastnn Sequential of layers and its torch twin."""
    fastnn.manual_seed(0)
    model = nn.Sequential(*layers).to_dtype(dtype)
    return model, torch_twin(model)


def _raises_like(torch_call, fastnn_call):
    """Both calls raise the same exception type with the same message."""
    with pytest.raises(Exception) as expected:
        torch_call()
    with pytest.raises(type(expected.value)) as got:
        fastnn_call()
    assert str(got.value) == str(expected.value)


def _run(model, twin, x, grad_out, dtype):
    """Forward and backward through both; compares output, input and parameter grads."""
    y = model(x)
    grad_x = model.backward(grad_out)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    yt = twin(xt)
    yt.backward(torch.from_numpy(grad_out.copy()))
    assert_close(y, yt.detach().numpy(), dtype)
    assert_close(grad_x, xt.grad.numpy(), dtype)
    for name, p in model.named_parameters():
        assert_close(p.grad, twin.get_parameter(name).grad.numpy(), dtype, err_msg=name)
    return y, grad_x


# --------------------------------------------------------------------- dotted paths
def _nested():
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4),
                          nn.Sequential(nn.Linear(4, 2, bias=False), nn.ReLU()))
    return model, torch_twin(model)


def test_get_submodule_parameter_buffer_match_torch():
    model, twin = _nested()
    for name, module in twin.named_modules():
        assert type(model.get_submodule(name)).__name__ == type(module).__name__
    assert model.get_submodule("") is model
    assert model.get_parameter("2.0.weight") is model[2][0].weight
    assert model.get_buffer("1.running_mean") is model[1].running_mean
    for target in ["3", "2.5", "0.weight", "2.0.foo", "0.weight.x"]:
        _raises_like(lambda: twin.get_submodule(target), lambda: model.get_submodule(target))
    for target in ["0.foo", "1.running_mean", "2.0.bias", "4.weight", "0"]:
        _raises_like(lambda: twin.get_parameter(target), lambda: model.get_parameter(target))
    for target in ["1.weight", "1.nope", "5.running_var", "2"]:
        _raises_like(lambda: twin.get_buffer(target), lambda: model.get_buffer(target))


def test_set_submodule_matches_torch(rng):
    model, twin = _nested()
    new, new_t = nn.Tanh(), torch.nn.Tanh()
    model.set_submodule("2.1", new)
    twin.set_submodule("2.1", new_t)
    assert model[2][1] is new and model.get_submodule("2.1") is new
    model.eval(), twin.eval()
    x = rng.standard_normal((5, 3)).astype(np.float32)
    assert_close(model(x), twin(torch.from_numpy(x)).detach().numpy(), np.float32)
    extra, extra_t = nn.Linear(2, 2), torch.nn.Linear(2, 2)
    model.set_submodule("0.extra", extra)  # strict=False: a new child of model[0]
    twin.set_submodule("0.extra", extra_t)
    assert model[0].extra is extra and "0.extra.weight" in model.state_dict()
    del model[0].extra, twin[0].extra  # (as PyTorch's: out of the module's tables too)
    del model[1].bias, twin[1].bias
    assert list(model.state_dict()) == list(twin.state_dict())
    cases = [("", nn.ReLU(), torch.nn.ReLU(), False), ("1", 3, 3, False),
             ("0.missing", nn.ReLU(), torch.nn.ReLU(), True), ("0.weight", nn.ReLU(),
                                                                torch.nn.ReLU(), False),
             ("7.x", nn.ReLU(), torch.nn.ReLU(), False)]
    for target, mod, mod_t, strict in cases:
        _raises_like(lambda: twin.set_submodule(target, mod_t, strict),
                     lambda: model.set_submodule(target, mod, strict))


def test_set_submodule_on_a_sequential_runs_the_new_layer(rng):
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    model.set_submodule("1", nn.Tanh())
    model.set_submodule("tail", nn.Sigmoid())  # a new attribute layer runs last (PyTorch)
    twin = torch_twin(model)
    assert [type(m).__name__ for m in twin] == ["Linear", "Tanh", "Linear", "Sigmoid"]
    _run(model, twin, rng.standard_normal((4, 3)).astype(np.float32),
         rng.standard_normal((4, 2)).astype(np.float32), np.float32)


# -------------------------------------------------------------------------- hooks
def _logging_hooks(log, lib):
    """Hooks that log (kind, class name) and replace some values, the same for both
    libraries (lib converts: 'np' or 'torch')."""
    def pre(m, args):
        log.append(("pre", type(m).__name__, tuple(args[0].shape)))
        # a single value; + 0.5 passes gradients through unchanged, as fastnn takes it
        return args[0] + 0.5 if type(m).__name__ == "Tanh" else None

    def pre_kw(m, args, kwargs):
        log.append(("pre_kw", type(m).__name__, sorted(kwargs)))
        return None

    def post(m, args, out):
        log.append(("post", type(m).__name__, tuple(out.shape)))

    def bpre(m, grad_output):
        log.append(("bpre", type(m).__name__, len(grad_output)))
        return (grad_output[0] * 3,) if type(m).__name__ == "ReLU" else None

    def bpost(m, grad_input, grad_output):
        log.append(("bpost", type(m).__name__, len(grad_input), len(grad_output)))
        return (grad_input[0] * 0.25,) if type(m).__name__ == "Linear" else None
    return pre, pre_kw, post, bpre, bpost


def test_hooks_order_and_replacement_match_torch(dtype, rng):
    model, twin = _twins(dtype, nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 4), nn.Tanh(),
                         nn.Linear(4, 2))
    logs = {}
    for lib, net in (("np", model), ("torch", twin)):
        log = logs[lib] = []
        pre, pre_kw, post, bpre, bpost = _logging_hooks(log, lib)
        for i in (1, 2, 3):
            net[i].register_forward_pre_hook(pre)
            net[i].register_forward_pre_hook(pre_kw, with_kwargs=True, prepend=True)
            net[i].register_forward_hook(post)
            net[i].register_full_backward_pre_hook(bpre)
            net[i].register_full_backward_hook(bpost)
        net.register_forward_hook(post)  # on the Sequential itself
        net.register_full_backward_hook(bpost)
    x = rng.standard_normal((6, 3)).astype(dtype)
    _run(model, twin, x, rng.standard_normal((6, 2)).astype(dtype), dtype)
    assert logs["np"] == logs["torch"]
    assert all(act is None for _, act, _ in model._steps)  # hooked: nothing fused


def test_forward_hook_replaces_the_output_and_removal_restores_fusion(dtype, rng):
    model, twin = _twins(dtype, nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    seen, kept = {}, []

    def keep(m, args, out):
        kept.append((args[0], out))  # the arrays themselves, not copies
        seen["np"] = (args[0].copy(), out.copy())
    handle = model[1].register_forward_hook(keep)
    twin[1].register_forward_hook(lambda m, a, o: seen.__setitem__(
        "torch", (a[0].detach().numpy().copy(), o.detach().numpy().copy())))
    x = rng.standard_normal((5, 3)).astype(dtype)
    g = rng.standard_normal((5, 2)).astype(dtype)
    _run(model, twin, x, g, dtype)
    assert model._steps[0][1] is None  # the hooked ReLU ran on its own
    for a, b in zip(seen["np"], seen["torch"]):  # the ReLU's real input and output
        assert_close(a, b, dtype)
    model(x + 1)  # the arrays a hook kept are its own: the next step writes elsewhere
    for a, b in zip(kept[0], seen["torch"]):
        assert_close(a, b, dtype)
    handle.remove()
    handle.remove()  # a second remove does nothing
    model(x)
    assert model._steps[0][1] is model[1]  # fused again
    with model[0].register_forward_hook(lambda m, a, out: out + 1):
        y = model(x)
    assert_close(y, twin[2](twin[1](twin[0](torch.from_numpy(x)) + 1)).detach().numpy(), dtype)
    assert not model[0]._forward_hooks and model._steps[0][1] is None


def test_backward_hooks_get_fresh_arrays_they_may_keep(rng):
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    kept = []
    model[1].register_full_backward_hook(lambda m, gi, go: kept.append((gi[0], go[0])))
    x = rng.standard_normal((5, 3)).astype(np.float32)
    for step in range(2):
        model(x + step)
        model.backward(np.full((5, 2), step + 1.0, np.float32))
        kept.append(tuple(a.copy() for a in kept[-1]))
    for a, b in zip(kept[0], kept[1]):
        np.testing.assert_array_equal(a, b)
    assert not np.shares_memory(kept[0][0], kept[2][0])


def test_plain_layer_hooks_and_forward_bypass(rng):
    fastnn.manual_seed(0)
    lin = nn.Linear(3, 2)
    twin = torch_twin(lin)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    for net in (lin, twin):
        net.register_forward_pre_hook(lambda m, args: (args[0] * 2,))
        net.register_forward_hook(lambda m, args, out: out - 1)
    xt = torch.from_numpy(x)
    assert_close(lin(x), twin(xt).detach().numpy(), np.float32)
    assert_close(lin.forward(x), twin.forward(xt).detach().numpy(), np.float32)  # no hooks


def test_pre_hook_with_kwargs_and_always_call_match_torch():
    class Scale(nn.Module):
        def forward(self, x, factor=1.0):
            if factor < 0:
                raise ValueError("negative factor")
            return x * factor

    class ScaleT(torch.nn.Module):
        def forward(self, x, factor=1.0):
            if factor < 0:
                raise ValueError("negative factor")
            return x * factor
    logs = {"np": [], "torch": []}
    results = {}
    for lib, mod in (("np", Scale()), ("torch", ScaleT())):
        log = logs[lib]
        mod.register_forward_pre_hook(lambda m, a, kw: (a, {"factor": kw["factor"] * 10}),
                                      with_kwargs=True)
        mod.register_forward_hook(lambda m, a, kw, out: log.append(("kw", kw)) or out + 1,
                                  with_kwargs=True)
        mod.register_forward_hook(lambda m, a, out: log.append(("always", out is None)),
                                  always_call=True)
        x = np.ones(2) if lib == "np" else torch.ones(2, dtype=torch.float64)
        results[lib] = np.asarray(mod(x, factor=2.0))
        with pytest.raises(ValueError, match="negative factor"):
            mod(x, factor=-1.0)
        bad = mod.register_forward_pre_hook(lambda m, a, kw: a, with_kwargs=True)
        with pytest.raises(RuntimeError) as err:
            mod(x, factor=1.0)
        log.append(str(err.value).split(", but got")[0])
        bad.remove()
    assert logs["np"] == logs["torch"]
    np.testing.assert_array_equal(results["np"], results["torch"])


def test_backward_hook_errors_and_no_input_grad_match_torch(rng):
    fastnn.manual_seed(0)
    lin = nn.Linear(3, 2).double()
    twin = torch_twin(lin)
    x = rng.standard_normal((4, 3))
    g = rng.standard_normal((4, 2))
    xt = torch.from_numpy(x)

    def torch_backward(requires_grad):
        twin(xt.clone().requires_grad_(requires_grad)).backward(torch.from_numpy(g))

    def fastnn_backward(need):
        lin(x)
        return lin.backward(g, need_grad_in=need)
    seen = {}
    for net, key in ((lin, "np"), (twin, "torch")):
        handle = net.register_full_backward_hook(
            lambda m, gi, go, key=key: seen.setdefault(key, []).append(gi[0] is None))
        pre_bad = net.register_full_backward_pre_hook(lambda m, go: (go[0], go[0]))
        seen[key + "_pre"] = pytest.raises(RuntimeError, torch_backward if key == "torch"
                                           else fastnn_backward, True).value
        pre_bad.remove()
        bad = net.register_full_backward_hook(lambda m, gi, go: (gi[0], gi[0]))
        seen[key + "_post"] = pytest.raises(RuntimeError, torch_backward if key == "torch"
                                            else fastnn_backward, True).value
        bad.remove()
        none_only = net.register_full_backward_hook(lambda m, gi, go: (g,))
        with pytest.warns(UserWarning) if key == "torch" else _no_warning():
            seen[key + "_none"] = pytest.raises(
                RuntimeError, torch_backward if key == "torch" else fastnn_backward,
                False).value
        none_only.remove()
        handle.remove()
    for suffix in ("_pre", "_post", "_none"):
        assert str(seen["np" + suffix]) == str(seen["torch" + suffix])
    assert seen["np"] == seen["torch"]  # (False, False, True): grad_input (None,) at last
    with lin.register_full_backward_hook(lambda m, gi, go: (gi[0][:1],)):
        with pytest.raises(ValueError, match="returned grad_input\\[0\\] of shape"):
            fastnn_backward(True)


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_backward_hook_returning_none_cuts_the_gradient(rng):
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    twin = torch_twin(model)
    for net in (model, twin):
        net[1].register_full_backward_hook(lambda m, gi, go: (None,))
    x, g = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
    assert model(x) is not None and model.backward(g) is None
    xt = torch.from_numpy(x).requires_grad_(True)
    twin(xt).backward(torch.from_numpy(g))
    assert xt.grad is None and twin[0].weight.grad is None
    assert not model[0].weight.grad.any()
    assert_close(model[2].weight.grad, twin[2].weight.grad.numpy(), np.float64)


def test_user_module_hooks_fire_once_alone_and_in_a_sequential(rng):
    class Square(nn.Module):
        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, grad_out):
            return 2 * self.x * grad_out

    fired = []
    sq = Square()
    sq.register_full_backward_pre_hook(lambda m, go: fired.append("pre"))
    sq.register_full_backward_hook(lambda m, gi, go: fired.append("post"))
    sq.register_forward_hook(lambda m, a, out: fired.append("fwd"))
    x = rng.standard_normal((2, 3))
    sq(x)
    np.testing.assert_allclose(sq.backward(np.ones((2, 3))), 2 * x)
    assert fired == ["fwd", "pre", "post"]
    fired.clear()
    model = nn.Sequential(nn.Linear(3, 3).double(), sq, nn.ReLU())
    model(x)
    model.backward(np.ones((2, 3)))
    assert fired == ["fwd", "pre", "post"]


def test_hooks_on_a_layer_with_its_own_call_and_backward_and_handles():
    layer = nn.CosineSimilarity()  # defines __call__(x1, x2) and backward -> (g1, g2)
    seen = []
    handle = layer.register_forward_hook(lambda m, args, out: seen.append(len(args)) or out * 2)
    layer.register_full_backward_hook(lambda m, gi, go: seen.append((len(gi), len(go))))
    x1, x2 = np.ones((2, 3)), np.full((2, 3), 2.0)
    np.testing.assert_allclose(layer(x1, x2), [2.0, 2.0])
    assert len(layer.backward(np.ones(2))) == 2 and seen == [2, (2, 1)]
    assert isinstance(handle, RemovableHandle)
    with handle as same:
        assert same is handle
    np.testing.assert_allclose(layer(x1, x2), [1.0, 1.0])
    other = layer.register_forward_pre_hook(lambda m, a: None)
    assert other.id > handle.id
    with pytest.raises(TypeError, match="expected a callable hook"):
        layer.register_forward_hook(3)
    ref = weakref.ref(layer)
    del layer
    gc.collect()
    assert ref() is None  # a handle does not keep its module alive
    other.remove()


def test_fused_pair_with_backward_hooks_added_after_forward_is_an_error(rng):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU())
    x = rng.standard_normal((2, 3)).astype(np.float32)
    model(x)
    before = model[0].weight.grad.copy()
    with model[1].register_full_backward_hook(lambda m, gi, go: None):
        with pytest.raises(RuntimeError, match="ran fused in the last forward"):
            model.backward(np.ones((2, 4), np.float32))
    np.testing.assert_array_equal(model[0].weight.grad, before)


# -------------------------------------------------------------------- extra state
class _Counter(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 2)
        self.steps = 0

    def get_extra_state(self):
        return {"steps": self.steps}

    def set_extra_state(self, state):
        self.steps = state["steps"]


class _CounterT(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 2)
        self.steps = 0

    def get_extra_state(self):
        return {"steps": self.steps}

    def set_extra_state(self, state):
        self.steps = state["steps"]


def test_extra_state_in_state_dict_matches_torch():
    model = nn.Sequential(nn.Linear(2, 2), _Counter(), nn.BatchNorm1d(2))
    twin = torch.nn.Sequential(torch.nn.Linear(2, 2), _CounterT(), torch.nn.BatchNorm1d(2))
    model[1].steps = 7
    state = model.state_dict()
    assert list(state) == list(twin.state_dict())
    assert state["1._extra_state"] == {"steps": 7}
    fresh = nn.Sequential(nn.Linear(2, 2), _Counter(), nn.BatchNorm1d(2))
    fresh.load_state_dict(state)
    assert fresh[1].steps == 7
    partial = {k: v for k, v in state.items() if k != "1._extra_state"}
    twin_partial = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                    for k, v in partial.items()}
    expected = twin.load_state_dict(twin_partial, strict=False)
    result = fresh.load_state_dict(partial, strict=False)
    assert result.missing_keys == expected.missing_keys == ["1._extra_state"]
    with pytest.raises(ValueError, match=r"missing keys \['1._extra_state'\]"):
        fresh.load_state_dict(partial)
    plain = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"unexpected keys \['_extra_state'\]"):
        plain.load_state_dict(dict(plain.state_dict(), _extra_state=1))
    with pytest.raises(RuntimeError, match="has no extra state"):
        plain.get_extra_state()


def test_type_converts_float32_float64_and_refuses_half():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    assert model.type(np.float64) is model and model[0].weight.dtype == np.float64
    model.type("torch.FloatTensor")
    assert {v.dtype for v in model.state_dict().values()} == {np.dtype(np.float32),
                                                              np.dtype(np.int64)}
    assert model.state_dict()["1.num_batches_tracked"].dtype == np.int64
    model.type(torch.float64)
    assert model[1].running_var.dtype == np.float64
    for bad in (np.float16, "half", torch.bfloat16, "torch.HalfTensor"):
        with pytest.raises(TypeError, match="fastnn runs float32 and float64 only"):
            model.type(bad)
    with pytest.raises(TypeError, match="expected float32 or float64, got int32"):
        model.type(np.int32)
    assert model[0].weight.dtype == np.float64


# ------------------------------------------------------------------- containers
def _names(seq):
    return [(name, type(m).__name__) for name, m in seq.named_children()]


def test_sequential_insert_pop_extend_match_torch(rng):
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    twin = torch_twin(model)
    for net, lib in ((model, nn), (twin, torch.nn)):
        assert net.insert(-1, lib.Tanh()) is net
        net.insert(4, lib.Sigmoid())
        net.extend([lib.Tanh(), lib.Identity()])
        assert type(net.pop(-2)).__name__ == "Tanh"
        assert type(net.pop(1)).__name__ == "ReLU"
        net[-1] = lib.Sigmoid()
        del net[3]
    assert _names(model) == _names(twin)
    assert list(model.state_dict()) == list(twin.state_dict())
    assert repr(model) == repr(twin)
    _run(model, twin, rng.standard_normal((3, 3)).astype(np.float32),
         rng.standard_normal((3, 2)).astype(np.float32), np.float32)
    sliced, sliced_t = model.pop(slice(0, 2)), twin.pop(slice(0, 2))
    assert _names(sliced) == _names(sliced_t) and _names(model) == _names(twin)
    for call in (lambda s: s.insert(5, nn.ReLU() if s is model else torch.nn.ReLU()),
                 lambda s: s.pop(4), lambda s: s.pop(-5), lambda s: s.insert(1.0, s[0])):
        _raises_like(lambda: call(twin), lambda: call(model))


def test_sequential_edits_keep_its_rules():
    seq = nn.Sequential(OrderedDict(a=nn.ReLU(), b=nn.Tanh()))
    with pytest.raises(KeyError, match="not by their positions"):
        seq.insert(0, nn.Sigmoid())
    assert _names(seq) == [("a", "ReLU"), ("b", "Tanh")]
    seq.insert(2, nn.Sigmoid())  # at the end it works, as in PyTorch
    assert seq.pop(0).__class__ is nn.ReLU
    assert [name for name, _ in seq.named_children()] == ["0", "1"]  # renumbered
    with pytest.raises(ValueError, match="already in this Sequential"):
        seq.insert(0, seq[1])
    with pytest.raises(ValueError, match="appears twice"):
        seq.extend([nn.ReLU(), seq[0]])
    with pytest.raises(TypeError, match="expected a Module, got int"):
        seq.extend([nn.ReLU(), 3])
    assert len(seq) == 2
    seq(np.ones((2, 2), np.float32))
    seq.append(nn.ReLU())
    with pytest.raises(RuntimeError, match=r"its layers were changed \(append, .*after its "
                                           r"last forward"):
        seq.backward(np.ones((2, 2), np.float32))


def test_module_list_insert_pop_match_torch():
    ml = nn.ModuleList([nn.ReLU(), nn.Tanh(), nn.Sigmoid()])
    mt = torch.nn.ModuleList([torch.nn.ReLU(), torch.nn.Tanh(), torch.nn.Sigmoid()])
    for net, lib in ((ml, nn), (mt, torch.nn)):
        assert net.insert(1, lib.Identity()) is None
        net.insert(4, lib.ReLU())
        assert type(net.pop(-1)).__name__ == "ReLU"
        assert type(net.pop(0)).__name__ == "ReLU"
        del net[0]
        net.append(lib.Tanh())
    assert _names(ml) == _names(mt) and repr(ml) == repr(mt)
    _raises_like(lambda: mt.pop(3), lambda: ml.pop(3))
    ml.insert(-1, nn.Identity())  # (PyTorch's raises KeyError '-1' here)
    assert [type(m).__name__ for m in ml] == ["Tanh", "Sigmoid", "Identity", "Tanh"]
    with pytest.raises(IndexError, match="Index out of range: 5"):
        ml.insert(5, nn.ReLU())


def test_parameter_dict_methods_match_torch():
    p, q = nn.Parameter(np.ones(2)), nn.Parameter(np.zeros(3))
    pd = nn.ParameterDict({"a": p})
    td = torch.nn.ParameterDict({"a": torch.nn.Parameter(torch.ones(2))})
    for d, value in ((pd, q), (td, torch.nn.Parameter(torch.zeros(3)))):
        assert d.setdefault("b", value) is value and d.setdefault("b", None) is value
        assert d.get("zz") is None and d.get("zz", 5) == 5 and d.get("a") is d["a"]
        copy = d.copy()
        assert list(copy) == ["a", "b"] and copy["a"] is d["a"]
        made = d.fromkeys(["x", "y"], value)
        assert list(made) == ["x", "y"] and made["y"] is value
        assert d.popitem() == ("b", value) and list(d) == ["a"]
        d.popitem()
    _raises_like(td.popitem, pd.popitem)
    assert pd.get("a") is None and len(pd) == 0


def test_a_positional_device_where_fastnn_takes_dtype_names_the_layer():
    """PyTorch's Linear(in, out, bias, device): fastnn's fourth argument is dtype, so a
    device there is a TypeError saying to pass it by keyword (not NumPy's dtype error)."""
    with pytest.raises(TypeError, match=r"Linear: got the device 'cpu'.*device="):
        nn.Linear(3, 4, True, "cpu")
    with pytest.raises(TypeError, match=r"Conv2d: got the device 'cuda:0'"):
        nn.Conv2d(1, 2, 3, 1, 0, 1, 1, True, "zeros", "cuda:0")
    assert nn.Linear(3, 4, True, np.float64).weight.data.dtype == np.float64
    assert nn.Linear(3, 4, device="cpu", dtype=None).weight.data.dtype == np.float32


def test_a_parameter_made_without_data_is_pytorchs_empty_one():
    """torch.nn.Parameter() is an empty float32 parameter; fastnn's needed data."""
    ours, theirs = nn.Parameter(), torch.nn.Parameter()
    assert ours.shape == tuple(theirs.shape) == (0,)
    assert ours.dtype == np.float32 and theirs.dtype == torch.float32
    assert ours.requires_grad and ours.grad.shape == (0,)
    assert not nn.Parameter(requires_grad=False).requires_grad


def _module_list_owner(lib):
    """A user module holding a ModuleList [Linear, ReLU, Linear, ReLU] and a
    ParameterList of two (2,) arrays, built with lib (fastnn.nn or torch.nn)."""
    zeros = (lambda n: torch.zeros(n)) if lib is torch.nn else (
        lambda n: np.zeros(n, np.float32))

    class Owner(lib.Module):
        def __init__(self):
            super().__init__()
            self.layers = lib.ModuleList([lib.Linear(2, 2), lib.ReLU(), lib.Linear(2, 2),
                                          lib.ReLU()])
            self.scales = lib.ParameterList([zeros(2), zeros(2)])
    return Owner()


def test_module_list_items_follow_setattr_set_submodule_and_delattr():
    # the items were kept in a private list that only the list methods updated: a
    # module put in by setattr (the usual 'replace every ReLU' walk) or set_submodule
    # showed in named_children() but not in iteration or indexing, so forward still ran
    # the old layer
    def kinds(lst):
        return [type(m).__name__ for m in lst]
    seen = {}
    for lib in (nn, torch.nn):
        owner = _module_list_owner(lib)
        for _, parent in list(owner.named_modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, lib.ReLU):
                    setattr(parent, name, lib.GELU())
        owner.set_submodule("layers.0", lib.Tanh())
        walked = (kinds(owner.layers), type(owner.layers[1]).__name__, len(owner.layers))
        delattr(owner.layers, "3")
        seen[lib] = (walked, kinds(owner.layers), len(owner.layers),
                     type(owner.layers[-1]).__name__)
    assert seen[nn] == seen[torch.nn]
    assert seen[nn][0] == (["Tanh", "GELU", "Linear", "GELU"], "GELU", 4)


def test_parameter_list_items_follow_assign_load_and_setattr():
    # load_state_dict(assign=True) puts new Parameters under '0', '1': parameters() had
    # them but scales[0] and iteration still gave the old ones (zeros)
    seen = {}
    for lib in (nn, torch.nn):
        owner = _module_list_owner(lib)
        ones = (torch.ones(2) if lib is torch.nn else np.ones(2, np.float32))
        state = {k: (v if k.startswith("layers") else ones * (1 + int(k[-1])))
                 for k, v in owner.state_dict().items()}
        owner.load_state_dict(state, assign=True)
        first = np.asarray(owner.scales[0].detach() if lib is torch.nn else owner.scales[0])
        listed = [np.asarray(p.detach() if lib is torch.nn else p).tolist()
                  for p in owner.scales]
        setattr(owner.scales, "1", lib.Parameter(ones[:1] * 5))
        seen[lib] = (first.tolist(), listed, [tuple(p.shape) for p in owner.scales],
                     len(owner.scales))
    assert seen[nn] == seen[torch.nn]
    assert seen[nn] == ([1.0, 1.0], [[1.0, 1.0], [2.0, 2.0]], [(2,), (1,)], 2)
