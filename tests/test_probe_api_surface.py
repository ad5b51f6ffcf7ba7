"""The signatures of Module, the containers, Optimizer and every optimizer and scheduler
class against torch 2.13's (argument names, kinds and defaults of every method both
have, so keyword calls written for PyTorch work), and the traversal arguments the
signature sweep found missing (``modules(remove_duplicate=)``)."""
import inspect

import numpy as np
import pytest

from fastnn import nn, optim
from fastnn.optim import lr_scheduler

torch = pytest.importorskip("torch")

# where fastnn's signature differs on purpose (README / the docstrings say why)
_DOCUMENTED = {
    "forward", "to",          # Module's forward(input), torch's (*input); to() names
                              # PyTorch's arguments
    "__init__",               # checked below, per class, apart from these
    "__call__",               # ParameterDict: Module's __call__, not torch's forward alias
}
_DOCUMENTED_IN = {("LBFGS", "step")}  # step(closure=None): a missing closure is named


def _pairs():
    out = [(nn.Module, torch.nn.Module)]
    out += [(getattr(nn, n), getattr(torch.nn, n)) for n in
            ("Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict")]
    out.append((optim.Optimizer, torch.optim.Optimizer))
    out += [(getattr(optim, n), getattr(torch.optim, n)) for n in dir(torch.optim)
            if isinstance(getattr(torch.optim, n), type) and hasattr(optim, n)
            and issubclass(getattr(torch.optim, n), torch.optim.Optimizer)]
    out += [(getattr(lr_scheduler, n), getattr(torch.optim.lr_scheduler, n))
            for n in dir(torch.optim.lr_scheduler)
            if isinstance(getattr(torch.optim.lr_scheduler, n), type)
            and hasattr(lr_scheduler, n) and n != "Optimizer"]
    return out


def _parameters(function):
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()
            if p.name != "self"]


def _compared_methods(ours, theirs):
    for name in sorted(dir(theirs)):
        if name.startswith("_") and name not in ("__iadd__", "__add__", "__mul__", "__or__"):
            continue
        if (name in _DOCUMENTED or (ours.__name__, name) in _DOCUMENTED_IN
                or not hasattr(ours, name)):
            continue
        mine, torchs = inspect.getattr_static(ours, name), inspect.getattr_static(theirs, name)
        if isinstance(mine, property) or isinstance(torchs, property):
            continue
        if callable(getattr(theirs, name)) and callable(getattr(ours, name)):
            yield name


def test_every_shared_method_takes_torchs_arguments():
    """Each method fastnn shares with torch takes the same argument names, kinds and
    defaults (Sequential.append(module=), ModuleList.extend(modules=),
    ModuleDict.update(modules=), ParameterDict.update(parameters=), Module.modules(
    remove_duplicate=) and SequentialLR.step() were different)."""
    compared, wrong = 0, []
    for ours, theirs in _pairs():
        for name in _compared_methods(ours, theirs):
            try:
                expected = _parameters(getattr(theirs, name))
            except (TypeError, ValueError):   # (a C method without a signature)
                continue
            compared += 1
            got = _parameters(getattr(ours, name))
            if got != expected:
                wrong.append(f"{ours.__name__}.{name}: {got} != {expected}")
    assert compared > 500
    assert not wrong, "\n".join(wrong)


def test_optimizer_and_scheduler_constructors_take_torchs_keywords():
    """Every torch constructor argument is a fastnn one of the same default (SGD's fourth
    positional argument, dampening in PyTorch, is weight_decay in DESIGN.md's contract:
    only the order differs, by name it is the same)."""
    for ours, theirs in _pairs()[7:]:
        mine = dict((n, d) for n, _, d in _parameters(ours.__init__))
        accepts_more = any(k == inspect.Parameter.VAR_KEYWORD
                           for _, k, _ in _parameters(ours.__init__))
        for name, _, default in _parameters(theirs.__init__):
            if name in mine:
                assert mine[name] == default or (mine[name] is None or default is None), (
                    ours.__name__, name)
            else:
                assert accepts_more, (ours.__name__, name)


@pytest.mark.parametrize("remove_duplicate", [True, False])
def test_modules_remove_duplicate_as_torch(remove_duplicate):
    root, ref = nn.Module(), torch.nn.Module()
    for net, lib in ((root, nn), (ref, torch.nn)):
        net.a = lib.Linear(2, 2)
        net.b = lib.Sequential(lib.Linear(2, 2), lib.ReLU())
        net.c = net.a
    got = [type(m).__name__ for m in root.modules(remove_duplicate=remove_duplicate)]
    want = [type(m).__name__ for m in ref.modules(remove_duplicate=remove_duplicate)]
    assert got == want
    assert len(got) == (5 if remove_duplicate else 6)
    assert list(root.modules()) == list(root.modules(remove_duplicate=True))


def test_container_methods_by_torchs_keywords():
    seq = nn.Sequential().append(module=nn.ReLU())
    lst = nn.ModuleList().append(module=nn.ReLU()).extend(modules=[nn.Tanh()])
    lst.__iadd__(modules=[nn.Sigmoid()])
    mods = nn.ModuleDict()
    mods.update(modules={"r": nn.ReLU()})
    params = nn.ParameterDict()
    params.update(parameters={"b": nn.Parameter(np.ones(2, np.float32)),
                              "a": nn.Parameter(np.zeros(2, np.float32))})
    plist = nn.ParameterList().append(value=nn.Parameter(np.ones(1, np.float32)))
    plist.extend(values=[nn.Parameter(np.ones(1, np.float32))])
    assert [type(m).__name__ for m in seq] == ["ReLU"]
    assert [type(m).__name__ for m in lst] == ["ReLU", "Tanh", "Sigmoid"]
    assert list(mods) == ["r"] and list(params) == ["a", "b"] and len(plist) == 2


def test_sequential_lr_step_takes_no_epoch_as_torch():
    """PyTorch's SequentialLR.step() takes no argument: a number passed as an epoch was
    taken as fastnn's internal chain flag (a ChainedScheduler member's step)."""
    def build(o, s):
        opt = o.SGD([p], lr=1.0)
        return s.SequentialLR(opt, [s.ConstantLR(opt, factor=0.5, total_iters=2),
                                    s.ExponentialLR(opt, gamma=0.9)], milestones=[2])
    p = nn.Parameter(np.ones(1, np.float32))
    ours = build(optim, lr_scheduler)
    p = torch.nn.Parameter(torch.ones(1))
    ref = build(torch.optim, torch.optim.lr_scheduler)
    for sched in (ours, ref):
        with pytest.raises(TypeError):
            sched.step(5)
    for _ in range(4):
        ours.optimizer.step(), ref.optimizer.step()
        ours.step(), ref.step()
        assert ours.get_last_lr() == pytest.approx(ref.get_last_lr())


def test_sequential_add_module_under_a_taken_name_replaces_in_place_as_torch(rng):
    """PyTorch's Sequential.add_module (and register_module) under a name it holds puts
    the new layer in that place (fastnn raised KeyError); the model then runs it."""
    ours = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    theirs = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(),
                                 torch.nn.Linear(4, 2)).double()
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = rng.standard_normal((5, 3))
    ours(x)   # (a forward before the change: the change must not reuse it)
    ours.add_module("1", nn.Tanh())
    theirs.add_module("1", torch.nn.Tanh())
    ours.register_module("0", ours[0])   # (the same layer again: a no-op in both)
    theirs.register_module("0", theirs[0])
    assert [type(m).__name__ for m in ours] == ["Linear", "Tanh", "Linear"]
    assert [n for n, _ in ours.named_children()] == [n for n, _ in theirs.named_children()]
    np.testing.assert_allclose(ours(x), theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-12)
    with pytest.raises(ValueError, match="already in this Sequential"):
        ours.add_module("1", ours[2])     # (fastnn: one instance in one place)


def test_load_state_dict_assign_takes_the_given_parameters_as_torch():
    """assign=True with a keep_vars state dict makes the given Parameters the module's
    (PyTorch's: shared with the source, tied ones stay tied, requires_grad from the
    module); fastnn made new Parameters sharing their data."""
    def pair(lib):
        src, dst = lib.Sequential(lib.Linear(2, 2), lib.Linear(2, 2)), lib.Sequential(
            lib.Linear(2, 2), lib.Linear(2, 2))
        src[1].weight = src[0].weight
        dst[0].bias.requires_grad_(False)
        dst.load_state_dict(src.state_dict(keep_vars=True), assign=True)
        return src, dst
    for lib in (nn, torch.nn):
        src, dst = pair(lib)
        assert dst[0].weight is src[0].weight and dst[1].weight is dst[0].weight
        assert dst[0].bias is src[0].bias and not src[0].bias.requires_grad
        assert [n for n, _ in dst.named_parameters()] == ["0.weight", "0.bias", "1.bias"]
    ours, _ = pair(nn)
    plain = nn.Linear(2, 2)
    plain.load_state_dict({k: np.array(v) for k, v in ours[0].state_dict().items()},
                          assign=True)
    assert isinstance(plain.weight, nn.Parameter) and plain.weight is not ours[0].weight


def test_the_base_optimizers_step_is_not_implemented_as_torch():
    """optim.Optimizer(params, defaults).step() is PyTorch's NotImplementedError (was a
    TypeError from inside the group checks); zero_grad and state_dict still work."""
    for lib, param in ((optim, nn.Parameter(np.ones(2, np.float32))),
                       (torch.optim, torch.nn.Parameter(torch.ones(2)))):
        opt = lib.Optimizer([param], {"lr": 0.1})
        with pytest.raises(NotImplementedError):
            opt.step()
        opt.zero_grad()
        assert opt.state_dict()["param_groups"][0]["params"] == [0]


def test_optimizer_state_dict_keeps_list_group_values_as_torch():
    """A group's list values (betas=[...], a user's own key) are lists in the state
    dict and after a load, as in PyTorch's (fastnn turned them into tuples), and copies:
    editing the state dict changes no group."""
    dicts = []
    for lib, param in ((optim, nn.Parameter(np.ones(2, np.float32))),
                       (torch.optim, torch.nn.Parameter(torch.ones(2)))):
        opt = lib.Adam([{"params": [param], "betas": [0.8, 0.9], "tag": ["enc"]}])
        saved = opt.state_dict()
        other = lib.Adam([type(param)(param.detach() if lib is torch.optim else param.data)])
        other.load_state_dict(saved)
        saved["param_groups"][0]["tag"].append("x")   # (after the load: not loaded)
        group = other.param_groups[0]
        dicts.append((saved["param_groups"][0]["betas"], group["betas"], group["tag"]))
        if lib is optim:   # (fastnn's state_dict holds copies; PyTorch's shares the lists)
            assert opt.param_groups[0]["tag"] == ["enc"]
    assert dicts[0] == dicts[1] == ([0.8, 0.9], [0.8, 0.9], ["enc"])
    assert all(type(a) is type(b) for a, b in zip(*dicts))


def test_parameter_scalar_and_gradient_errors_are_torchs_types():
    """A many-element Parameter's item() and an assigned gradient of the wrong shape are
    PyTorch's RuntimeError (and fastnn's ValueError; both were a bare ValueError);
    float() of one stays a ValueError, as PyTorch's."""
    ours = nn.Parameter(np.ones(2, np.float32))
    theirs = torch.nn.Parameter(torch.ones(2))
    for param in (ours, theirs):
        with pytest.raises(RuntimeError):
            param.item()
        with pytest.raises(ValueError):
            float(param)
        with pytest.raises(RuntimeError):
            param.grad = (np.zeros(3, np.float32) if param is ours else torch.zeros(3))
    with pytest.raises(ValueError, match="cannot be converted"):
        ours.item()
    assert ours.grad.shape == (2,) and float(nn.Parameter(np.full(1, 2.5))) == 2.5


@pytest.mark.parametrize("value", [2.7, -2.7, [3.0], [[-0.5]]])
def test_int_of_a_one_element_parameter_as_torch(value):
    ours = nn.Parameter(np.array(value, np.float32))
    theirs = torch.nn.Parameter(torch.tensor(value))
    assert int(ours) == int(theirs)
    with pytest.raises(ValueError, match="only one element"):
        int(nn.Parameter(np.ones(2, np.float32)))


@pytest.mark.parametrize("group", [{}, {"lr": 0.1}])
def test_a_parameter_group_without_params_is_torchs_key_error(group):
    theirs = torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=0.1)
    with pytest.raises(KeyError):
        theirs.add_param_group(dict(group))
    ours = optim.SGD([nn.Parameter(np.ones(2, np.float32))], lr=0.1)
    with pytest.raises(KeyError, match="'params' entry") as caught:
        ours.add_param_group(dict(group))
    assert isinstance(caught.value, ValueError) and len(ours.param_groups) == 1
    with pytest.raises(KeyError):
        optim.SGD([dict(group)], lr=0.1)


def test_forward_takes_pytorchs_input_keyword():
    """torch names forward's argument input: model(input=x), and a with_kwargs pre-hook
    passing it by keyword, raised "unexpected keyword argument 'input'" (fastnn named it
    x)."""
    x = np.ones((2, 4), np.float32)
    seq = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    np.testing.assert_array_equal(seq(input=x), seq(x))
    assert nn.Linear(4, 3)(input=x).shape == (2, 3)
    assert nn.LSTM(4, 3)(input=np.ones((5, 2, 4), np.float32))[0].shape == (5, 2, 3)
    assert nn.GRUCell(4, 3)(input=x).shape == (2, 3)
    y, indices = nn.MaxPool2d(2, return_indices=True)(input=np.ones((1, 1, 4, 4), np.float32))
    assert nn.MaxUnpool2d(2)(input=y, indices=indices).shape == (1, 1, 4, 4)
    assert nn.ConvTranspose2d(1, 1, 2)(input=np.ones((1, 1, 3, 3), np.float32)).shape == (
        1, 1, 4, 4)
    for cls, name in ((nn.Sequential, "input"), (nn.Linear, "input"), (nn.LSTM, "input"),
                      (nn.MaxUnpool2d, "input"), (nn.ConvTranspose2d, "input")):
        assert list(inspect.signature(cls.forward).parameters)[1] == name
        torch_cls = getattr(torch.nn, cls.__name__)
        assert list(inspect.signature(torch_cls.forward).parameters)[1] == name
