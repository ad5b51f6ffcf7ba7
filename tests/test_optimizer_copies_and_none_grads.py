"""Three ways PyTorch users handle parameters that fastnn's flat optimizer buffers must
follow: a deep copy or pickle of a model with its optimizer trains on its own; ``p.grad =
None`` clears a gradient (the next backward makes a fresh one); a parameter no backward
reached (new, or cleared) is skipped by step(), weight decay included."""
import copy
import pickle

import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn, optim
from tests.conftest import assert_close

X = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
IDX = np.array([0, 2, 5, 1, 2, 3])
Y = np.array([0, 1, 2, 1, 0, 2])


def _models():
    fastnn.manual_seed(0)
    ours = nn.Sequential(nn.Linear(4, 5), nn.LayerNorm(5), nn.ReLU(), nn.Linear(5, 3))
    emb = nn.Embedding(6, 4)
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.LayerNorm(5),
                                 torch.nn.ReLU(), torch.nn.Linear(5, 3))
    temb = torch.nn.Embedding(6, 4)
    for a, b in ((ours, theirs), (emb, temb)):
        b.load_state_dict({k: torch.tensor(v) for k, v in a.state_dict().items()})
    return ours, emb, theirs, temb


def _ours_step(model, emb, opt, loss_fn):
    loss_fn(model(emb(IDX)), Y)
    emb.backward(model.backward(loss_fn.backward()))
    opt.step()


def _theirs_step(model, emb, opt):
    torch.nn.functional.cross_entropy(model(emb(torch.tensor(IDX))), torch.tensor(Y)).backward()
    opt.step()


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
    lambda ps: optim.AdamW(ps, lr=0.05)], ids=["sgd", "adamw"])
def test_grad_set_to_none_each_step_trains_as_torch(backend, make):
    ours, emb, theirs, temb = _models()
    params = list(ours.parameters()) + list(emb.parameters())
    tparams = list(theirs.parameters()) + list(temb.parameters())
    opt = make(params)
    topt = {"SGD": lambda ps: torch.optim.SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.01),
            "AdamW": lambda ps: torch.optim.AdamW(ps, lr=0.05)}[type(opt).__name__](tparams)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(3):
        for p in params:
            p.grad = None
        for t in tparams:
            t.grad = None
        _ours_step(ours, emb, opt, loss_fn)
        _theirs_step(theirs, temb, topt)
    for p, t in zip(params, tparams):
        assert_close(p.data, t.detach().numpy(), np.float32, 10)


def test_parameters_no_backward_reached_are_skipped(backend):
    """An unused head: PyTorch's grad stays None, so neither weight decay nor state."""
    fastnn.manual_seed(1)
    used, unused = nn.Linear(4, 3), nn.Linear(4, 3)
    kept = unused.weight.data.copy()
    for opt in (optim.AdamW(list(used.parameters()) + list(unused.parameters()), lr=0.1),
                optim.SGD(list(used.parameters()) + list(unused.parameters()), lr=0.1,
                          weight_decay=0.5, momentum=0.9)):
        opt.step()   # before any backward: nothing moves
        assert not opt.state_dict()["state"]
        used(X)
        used.backward(np.ones((6, 3), np.float32))
        opt.step()
        opt.zero_grad()
        np.testing.assert_array_equal(unused.weight.data, kept)
        assert sorted(opt.state_dict()["state"]) == [0, 1]


@pytest.mark.parametrize("make", [
    lambda ps: optim.Adam(ps, lr=0.05),
    # (Adafactor and Muon keep per-parameter state by id: the copies' ids are new)
    lambda ps: optim.Adafactor(ps, lr=0.05),
    lambda ps: optim.Muon([p for p in ps if p.data.ndim == 2], lr=0.05)],
    ids=["adam", "adafactor", "muon"])
@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_copied_model_and_optimizer_train_on_their_own(backend, how, make):
    ours, emb, _, _ = _models()
    opt = make(list(ours.parameters()) + list(emb.parameters()))
    loss_fn = nn.CrossEntropyLoss()
    opt.zero_grad()
    _ours_step(ours, emb, opt, loss_fn)
    state = (ours, emb, opt)
    copied = copy.deepcopy(state) if how == "deepcopy" else pickle.loads(pickle.dumps(state))
    ours2, emb2, opt2 = copied
    before = [p.data.copy() for p in ours.parameters()]
    for _ in range(2):   # the copy trains, and exactly as the original would
        opt2.zero_grad()
        _ours_step(ours2, emb2, opt2, loss_fn)
    for p, b in zip(ours.parameters(), before):
        np.testing.assert_array_equal(p.data, b)   # the original is not touched
    for _ in range(2):
        opt.zero_grad()
        _ours_step(ours, emb, opt, loss_fn)
    for p, q in zip(list(ours.parameters()) + list(emb.parameters()),
                    list(ours2.parameters()) + list(emb2.parameters())):
        np.testing.assert_array_equal(p.data, q.data)


@pytest.mark.parametrize("prepare", [
    lambda m: m.double(),
    lambda m: m.to(np.float64),
    lambda m: m.float(),
    lambda m: (m.load_state_dict({k: v.copy() for k, v in m.state_dict().items()},
                                 assign=True), m)[1],
], ids=["double", "to_float64", "float", "load_assign"])
def test_converted_unused_head_is_skipped_as_torch(backend, prepare):
    """A model converted (.double(), .to(dtype)) or loaded with assign=True before any
    backward: its gradients are still PyTorch's None, and gradient clipping does not
    make them gradients, so an unused head stays put under weight decay."""
    fastnn.manual_seed(2)
    used, unused = prepare(nn.Linear(4, 3)), prepare(nn.Linear(4, 3))
    tdtype = torch.float64 if used.weight.dtype == np.float64 else torch.float32
    tused, tunused = torch.nn.Linear(4, 3).to(tdtype), torch.nn.Linear(4, 3).to(tdtype)
    for a, b in ((used, tused), (unused, tunused)):
        b.load_state_dict({k: torch.tensor(v) for k, v in a.state_dict().items()})
    opt = optim.SGD(list(used.parameters()) + list(unused.parameters()), lr=0.1,
                    weight_decay=0.5)
    topt = torch.optim.SGD(list(tused.parameters()) + list(tunused.parameters()), lr=0.1,
                           weight_decay=0.5)
    x = X.astype(used.weight.dtype)
    used(x)
    used.backward(np.ones((6, 3), x.dtype))
    tused(torch.tensor(x)).sum().backward()
    nn.utils.clip_grad_norm_(list(used.parameters()) + list(unused.parameters()), 1.0)
    torch.nn.utils.clip_grad_norm_(list(tused.parameters()) + list(tunused.parameters()), 1.0)
    opt.step()
    topt.step()
    for p, t in zip(list(used.parameters()) + list(unused.parameters()),
                    list(tused.parameters()) + list(tunused.parameters())):
        assert_close(p.data, t.detach().numpy(), x.dtype, 10)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the numpy reference: g * g overflows
@pytest.mark.parametrize("dtype,big", [(np.float64, 1e160), (np.float32, 1e30)])
def test_radam_first_steps_with_an_overflowing_square(backend, dtype, big):
    """RAdam's un-rectified steps use no second moment, so a gradient whose square
    overflows moves the parameter by lr * m, not to NaN (PyTorch)."""
    p = nn.Parameter(np.array([1.0, 2.0], dtype))
    t = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=torch.float64 if dtype == np.float64
                                        else torch.float32))
    opt, topt = optim.RAdam([p]), torch.optim.RAdam([t])
    for _ in range(2):
        p.grad = np.array([big, 1.0], dtype)
        t.grad = torch.tensor([big, 1.0], dtype=t.dtype)
        opt.step()
        topt.step()
        assert_close(p.data, t.detach().numpy(), dtype, 10)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copied_module_has_no_gradient_yet(backend, how):
    """PyTorch's copy of a module has grad None: the copy's step skips it, and a layer
    stack deep-copied from a used layer (TransformerEncoder's) starts clean."""
    fastnn.manual_seed(3)
    used = nn.Linear(4, 3)
    used(X)
    used.backward(np.ones((6, 3), np.float32))
    copied = copy.deepcopy(used) if how == "deepcopy" else pickle.loads(pickle.dumps(used))
    np.testing.assert_array_equal(copied.weight.data, used.weight.data)
    kept = copied.weight.data.copy()
    opt = optim.SGD(copied.parameters(), lr=0.1, weight_decay=0.5)
    opt.step()
    np.testing.assert_array_equal(copied.weight.data, kept)
    np.testing.assert_array_equal(copied.weight.grad, np.zeros_like(kept))
    assert np.abs(used.weight.grad).sum() > 0   # the original keeps its gradient


def test_a_shallow_copy_shares_the_data_and_has_no_gradient():
    """PyTorch's copy.copy of a Parameter: the same data, grad None; the original's
    gradient untouched."""
    used = nn.Linear(4, 3)
    used(X)
    used.backward(np.ones((6, 3), np.float32))
    before = used.weight.grad.copy()
    shallow = copy.copy(used.weight)
    assert shallow.data is used.weight.data and shallow.grad is None
    np.testing.assert_array_equal(used.weight.grad, before)
    t = torch.nn.Parameter(torch.ones(2))
    t.grad = torch.ones(2)
    assert copy.copy(t).grad is None


def test_transformer_layers_cloned_from_a_used_layer_start_clean():
    layer = nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, dtype=np.float64)
    x = np.random.default_rng(0).standard_normal((3, 2, 4))
    layer(x)
    layer.backward(np.ones((3, 2, 4)))
    encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
    for p in encoder.parameters():
        np.testing.assert_array_equal(p.grad, np.zeros_like(p.data))


def test_apply_visits_a_child_held_twice_once():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(2, 2)
            self.b = self.a

    seen = []
    Net().apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Linear", "Net"]   # PyTorch's


def test_a_module_pickled_with_none_grads_trains_in_a_new_process(tmp_path):
    """p.grad = None before pickling: the process that loads it (a spawn worker, a
    model read from disk) makes the gradients at the next backward, as PyTorch does
    (it had left them None: Linear and conv never trained, LayerNorm crashed)."""
    import subprocess
    import sys
    script = (
        "import pickle, sys, numpy as np, fastnn\n"
        "from fastnn import nn\n"
        "path = sys.argv[2]\n"
        "if sys.argv[1] == 'write':\n"
        "    fastnn.manual_seed(0)\n"
        "    m = nn.Sequential(nn.Linear(4, 3), nn.LayerNorm(3))\n"
        "    for p in m.parameters():\n"
        "        p.grad = None\n"
        "    pickle.dump(m, open(path, 'wb'))\n"
        "else:\n"
        "    m = pickle.load(open(path, 'rb'))\n"
        "m(np.ones((2, 4), np.float32))\n"
        "m.backward(np.ones((2, 3), np.float32))\n"
        "print([None if p.grad is None else float(np.abs(p.grad).sum()) "
        "for p in m.parameters()])\n")
    path = str(tmp_path / "model.pkl")
    runs = [subprocess.run([sys.executable, "-c", script, how, path], capture_output=True,
                           text=True, timeout=300) for how in ("write", "read")]
    for run in runs:
        assert run.returncode == 0, run.stderr
    assert runs[0].stdout == runs[1].stdout and "None" not in runs[1].stdout


def test_a_custom_optimizer_skips_frozen_parameters_as_in_pytorch():
    # PyTorch's frozen parameter has grad None, so `if p.grad is None: continue` skips
    # it; fastnn's backward fills its .grad, and has_no_grad says what PyTorch's None says
    class PlainSGD(optim.Optimizer):
        def __init__(self, params, lr):
            super().__init__(params, dict(lr=lr))

        def step(self):
            for group in self.param_groups:
                for p in group["params"]:
                    if optim.has_no_grad(p):
                        continue
                    p.data -= group["lr"] * p.grad

    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    model[0].requires_grad_(False)
    frozen, head = model[0].weight.data.copy(), model[2].weight.data.copy()
    opt = PlainSGD(model.parameters(), lr=0.1)
    model.backward(np.ones((5, 2), np.float32) + 0 * model(np.ones((5, 4), np.float32)))
    assert optim.has_no_grad(model[0].weight) and not optim.has_no_grad(model[2].weight)
    opt.step()
    np.testing.assert_array_equal(model[0].weight.data, frozen)
    assert not np.array_equal(model[2].weight.data, head)


def _twin_mlps():
    fastnn.manual_seed(0)
    ours = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Tanh(),
                                 torch.nn.Linear(4, 2)).double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((8, 4)), rng.standard_normal((8, 2))) for _ in range(8)]

    def backward(step):
        x, y = batches[step]
        out = ours(x)
        ours.backward(2 * (out - y) / out.size)
        ((theirs(torch.tensor(x)) - torch.tensor(y)) ** 2).mean().backward()
    return ours, theirs, backward


@pytest.mark.parametrize("adam", [False, True], ids=["sgd", "adam"])
def test_a_backbone_unfrozen_mid_training_steps_as_in_pytorch(backend, adam):
    """Fine-tuning: the head's optimizer only, the loop backward; step; zero_grad, then
    the backbone unfrozen and added with add_param_group. backward kept adding into the
    frozen backbone's .grad, which no optimizer zeroed, so its first step used every
    frozen step's gradient summed (PyTorch's frozen grad stays None)."""
    ours, theirs, backward = _twin_mlps()
    for model in (ours, theirs):
        model[0].requires_grad_(False)
    opts = ((optim.Adam(ours[2].parameters(), lr=0.05),
             torch.optim.Adam(theirs[2].parameters(), lr=0.05)) if adam else
            (optim.SGD(ours[2].parameters(), lr=0.1, momentum=0.9),
             torch.optim.SGD(theirs[2].parameters(), lr=0.1, momentum=0.9)))
    for step in range(6):
        if step == 3:
            for model, opt in zip((ours, theirs), opts):
                model[0].requires_grad_(True)
                opt.add_param_group({"params": list(model[0].parameters())})
        backward(step)
        for opt in opts:
            opt.step()
            opt.zero_grad()
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert_close(p.data, q.detach().numpy(), np.float64)


def test_a_gradient_frozen_and_unfrozen_is_pytorchs(backend):
    """The gradient a parameter had when frozen comes back when unfrozen, and backward
    adds to it (PyTorch's backward leaves a frozen one alone); one zeroed or set by hand
    while frozen comes back as that."""
    ours, theirs, backward = _twin_mlps()
    backward(0)
    for model in (ours, theirs):
        model[0].requires_grad_(False)
    backward(1)
    backward(2)
    for model in (ours, theirs):
        model[0].requires_grad_(True)
    backward(3)
    assert_close(ours[0].weight.grad, theirs[0].weight.grad.numpy(), np.float64)
    for model in (ours, theirs):
        model[0].requires_grad_(False)
        model[0].zero_grad()            # (PyTorch's: None)
        model[0].bias.grad = np.full(4, 0.5) if model is ours else torch.full((4,), 0.5,
                                                                             dtype=torch.float64)
    backward(4)
    for model in (ours, theirs):
        model[0].requires_grad_(True)
    backward(5)
    assert_close(ours[0].weight.grad, theirs[0].weight.grad.numpy(), np.float64)
    assert_close(ours[0].bias.grad, theirs[0].bias.grad.numpy(), np.float64)


def test_a_frozen_gradient_edited_in_place_keeps_the_edit_as_pytorchs(backend):
    """PyTorch's frozen .grad is the user's tensor: an edit in place while frozen (through
    .grad or an array taken from it before freezing) is what unfreezing gives back. Only
    assignments and zero_grads were noted, so such an edit was lost: unfreezing put back
    the copy taken when the parameter was frozen."""
    ours, theirs, backward = _twin_mlps()
    backward(0)
    kept = (ours[0].weight.grad, theirs[0].weight.grad)
    for model in (ours, theirs):
        model[0].requires_grad_(False)
        model[0].bias.grad[1:] = 0
    for g in kept:
        g *= 3
    backward(1)
    for model in (ours, theirs):
        model[0].requires_grad_(True)
    assert ours[0].weight.grad is kept[0]
    assert_close(ours[0].bias.grad, theirs[0].bias.grad.numpy(), np.float64)
    backward(2)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert_close(p.grad, q.grad.numpy(), np.float64)


def test_a_custom_backward_adding_to_a_frozen_gradient_leaves_it_alone():
    """A custom layer's backward that does not skip a frozen parameter adds into a
    scratch array: the gradient (and an edit made to it while frozen) stays as PyTorch's,
    whose backward never touches a frozen one."""

    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(np.full(3, 2.0))

        def forward(self, x):
            self.x = x
            return x * self.w.data

        def backward(self, grad_out):
            self.w.grad += (grad_out * self.x).sum(axis=0)
            return grad_out * self.w.data

    layer = Scale()
    x = np.ones((4, 3))
    layer.backward(layer(x))
    layer.w.requires_grad_(False)
    layer.w.grad[0] = 5.0
    for _ in range(2):
        layer.backward(layer(x))
    np.testing.assert_array_equal(layer.w.grad, [5.0, 8.0, 8.0])
    layer.w.requires_grad_(True)
    layer.backward(layer(x))
    np.testing.assert_array_equal(layer.w.grad, [13.0, 16.0, 16.0])


@pytest.mark.parametrize("set_to_none", [False, True])
def test_a_gradient_zeroed_by_the_optimizer_while_frozen_comes_back_zeroed(backend,
                                                                           set_to_none):
    """optimizer.zero_grad() of a frozen parameter is the gradient it gets back when
    unfrozen, as Module.zero_grad()'s. With set_to_none=False the optimizer wrote the
    zeros without noting them, so unfreezing put back the gradient from before it was
    frozen and the next backward added to it (PyTorch's: zeros, then that backward's)."""
    ours, theirs, backward = _twin_mlps()
    opts = (optim.SGD(ours.parameters(), lr=0.1), torch.optim.SGD(theirs.parameters(), lr=0.1))
    backward(0)
    for model, opt in zip((ours, theirs), opts):
        model[0].requires_grad_(False)
        opt.zero_grad(set_to_none=set_to_none)
        model[0].requires_grad_(True)
    backward(1)
    for p, q in zip(ours.parameters(), theirs.parameters()):
        assert_close(p.grad, q.grad.numpy(), np.float64)
