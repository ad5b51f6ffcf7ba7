"""Sequential: Linear + activation fusion equals the unfused layers exactly, returned arrays
are fresh, intermediate buffers are reused, and need_grad_in=False skips the input grad."""
import copy

import numpy as np
import pytest

import fastnn
from fastnn import nn

from conftest import assert_close
from nn_torch_helpers import run_torch, torch_twin

FUSABLE = [nn.Identity, nn.ReLU, lambda: nn.LeakyReLU(0.1), nn.LeakyReLU, nn.Sigmoid, nn.Tanh]
FUSABLE_IDS = ["identity", "relu", "leaky_relu_0.1", "leaky_relu", "sigmoid", "tanh"]


def _net(act_factory, dtype):
    fastnn.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), act_factory(), nn.Linear(5, 3)).to_dtype(dtype)


def _unfused(seq, x, grad_out):
    """Run the layers one by one through their public API (never fused)."""
    h = x
    for layer in seq:
        h = layer(h)
    g = grad_out
    for layer in reversed(list(seq)):
        g = layer.backward(g)
    return h, g


@pytest.mark.parametrize("act", FUSABLE, ids=FUSABLE_IDS)
def test_fused_equals_unfused_exactly(backend, dtype, rng, act):
    fused, plain = _net(act, dtype), _net(act, dtype)
    x = rng.standard_normal((7, 6)).astype(dtype)
    grad_out = rng.standard_normal((7, 3)).astype(dtype)

    y = fused(x)
    assert fused._steps[0][1] is fused[1], "the activation was not fused into the Linear"
    grad_x = fused.backward(grad_out)
    y_ref, grad_x_ref = _unfused(plain, x, grad_out)

    with pytest.raises(RuntimeError, match="ran fused into the preceding Linear"):
        fused[1].backward(grad_out)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(grad_x, grad_x_ref)
    for (name, p), (_, q) in zip(fused.named_parameters(), plain.named_parameters()):
        np.testing.assert_array_equal(p.grad, q.grad, err_msg=name)


def test_leaky_relu_with_negative_slope_is_not_fused_and_matches_torch(backend, dtype, rng):
    seq = _net(lambda: nn.LeakyReLU(-0.5), dtype)
    x = rng.standard_normal((7, 6)).astype(dtype)
    grad_out = rng.standard_normal((7, 3)).astype(dtype)
    y = seq(x)
    assert seq._steps[0][1] is None
    grad_x = seq.backward(grad_out)
    y_t, grad_x_t, grads_t = run_torch(torch_twin(seq), x, grad_out)
    assert_close(y, y_t, dtype)
    assert_close(grad_x, grad_x_t, dtype)
    for name, p in seq.named_parameters():
        assert_close(p.grad, grads_t[name], dtype, err_msg=name)


@pytest.mark.parametrize("tail", [[], [nn.Identity], [nn.Flatten], [nn.Dropout]],
                         ids=["none", "identity", "flatten", "dropout"])
def test_returned_arrays_are_never_overwritten(backend, dtype, rng, tail):
    seq = nn.Sequential(nn.Linear(4, 6), nn.ReLU(), nn.BatchNorm1d(6), nn.Tanh(),
                        nn.Linear(6, 3), *[cls() for cls in tail]).to_dtype(dtype)
    seq.eval()  # dropout in the tail is the identity: output comes through a passthrough
    x1, x2 = (rng.standard_normal((5, 4)).astype(dtype) for _ in range(2))
    g1, g2 = (rng.standard_normal((5, 3)).astype(dtype) for _ in range(2))
    y1 = seq(x1)
    gx1 = seq.backward(g1)
    kept_y, kept_gx = y1.copy(), gx1.copy()
    y2 = seq(x2)
    gx2 = seq.backward(g2)
    np.testing.assert_array_equal(y1, kept_y)
    np.testing.assert_array_equal(gx1, kept_gx)
    assert not np.shares_memory(y1, y2) and not np.shares_memory(gx1, gx2)


@pytest.mark.parametrize("layer_factory", [lambda: nn.Linear(4, 4), nn.ReLU, nn.Sigmoid,
                                           nn.GELU, lambda: nn.BatchNorm1d(4), nn.Softmax,
                                           lambda: nn.Dropout(0.3)],
                         ids=["linear", "relu", "sigmoid", "gelu", "batchnorm", "softmax",
                              "dropout"])
def test_direct_layer_calls_return_fresh_arrays(backend, rng, layer_factory):
    layer = layer_factory()
    x1, x2 = (rng.standard_normal((6, 4)).astype(np.float32) for _ in range(2))
    y1 = layer(x1)
    gx1 = layer.backward(np.ones_like(y1))
    kept_y, kept_gx = y1.copy(), gx1.copy()
    layer(x2)
    layer.backward(np.full_like(y1, 2.0))
    np.testing.assert_array_equal(y1, kept_y)
    np.testing.assert_array_equal(gx1, kept_gx)


def test_intermediate_buffers_are_reused_between_steps(backend, rng):
    seq = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.BatchNorm1d(8), nn.GELU(),
                        nn.Linear(8, 2))
    x = rng.standard_normal((5, 4)).astype(np.float32)
    g = np.ones((5, 2), np.float32)
    seq(x)
    seq.backward(g)
    first = {i: dict(layer._scratch) for i, layer in enumerate(seq)}
    seq(x)
    seq.backward(g)
    for i, layer in enumerate(seq):
        for key, buf in first[i].items():
            assert layer._scratch[key] is buf, f"layer {i} reallocated its {key!r} buffer"
    assert seq[0]._kept_buffer("y") is not None and seq[3]._kept_buffer("y") is not None


def test_a_model_shared_by_threads_gives_each_its_own_outputs(backend, rng):
    # an inference pool calling one model: each thread's intermediate arrays are its
    # own (they were the layer's, overwritten by the other thread mid-forward)
    import threading
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.BatchNorm1d(128), nn.Dropout(0.3),
                          nn.Linear(128, 10)).eval()
    xs = [rng.standard_normal((32, 64)).astype(np.float32) for _ in range(2)]
    expected = [model(x).copy() for x in xs]
    wrong = [0, 0]

    def infer(i):
        with fastnn.use_backend(backend), fastnn.no_grad():  # (both per thread)
            for _ in range(100):
                wrong[i] += not np.array_equal(model(xs[i]), expected[i])

    threads = [threading.Thread(target=infer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == [0, 0]
    # the ended threads' buffers go when a buffer is made next
    model(rng.standard_normal((7, 64)).astype(np.float32))
    running = {t.ident for t in threading.enumerate()}
    assert all(k[1] in running for k in model[0]._scratch if isinstance(k, tuple))



def test_an_ended_threads_buffers_leave_the_model_with_it(backend):
    """An inference pool shut down: its workers' intermediate arrays are freed as they
    end. They stayed in the layers until some thread made a buffer of a new shape: with
    the main thread going on at its own batch size, 4 workers' 5000-row batches through
    784-1024-1024-10 held 156 MB for good."""
    import threading
    import weakref
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Tanh(), nn.Linear(16, 4)).eval()
    model(np.ones((3, 8), np.float32))   # the main thread's own buffers, kept
    mine = {i: dict(layer._scratch) for i, layer in enumerate(model)}
    assert any(mine.values())
    theirs, idents = [], []

    def infer():   # (with gradients on: under no_grad a forward makes no buffers)
        with fastnn.use_backend(backend):
            model(np.ones((5, 8), np.float32))
        me = threading.get_ident()
        idents.append(me)
        theirs.extend(weakref.ref(buf) for layer in model for slot, buf in
                      layer._scratch.items() if isinstance(slot, tuple) and slot[1] == me)

    for _ in range(3):
        worker = threading.Thread(target=infer)
        worker.start()
        worker.join()
    assert len(theirs) >= 3 and len(idents) == 3
    model(np.ones((3, 8), np.float32))   # (a layer keeps its last forward's arrays)
    assert sum(r() is not None for r in theirs) == 0
    for i, layer in enumerate(model):
        assert not [slot for slot in layer._scratch if isinstance(slot, tuple)
                    and slot[1] in idents and slot[1] != threading.get_ident()]
        for slot, buf in mine[i].items():
            assert layer._scratch[slot] is buf


def test_need_grad_in_false_skips_input_gradient_but_not_parameter_gradients(backend, rng):
    fastnn.manual_seed(1)
    a = nn.Sequential(nn.Flatten(), nn.Linear(6, 4), nn.Sigmoid(), nn.Linear(4, 2))
    fastnn.manual_seed(1)
    b = nn.Sequential(nn.Flatten(), nn.Linear(6, 4), nn.Sigmoid(), nn.Linear(4, 2))
    x = rng.standard_normal((3, 2, 3)).astype(np.float32)
    g = rng.standard_normal((3, 2)).astype(np.float32)
    a(x)
    b(x)
    assert a.backward(g, need_grad_in=False) is None
    assert b.backward(g).shape == x.shape
    for p, q in zip(a.parameters(), b.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad)


def test_gradient_crosses_dropout_switched_to_eval_between_forward_and_backward(backend, rng):
    seq = nn.Sequential(nn.Dropout(0.5), nn.Linear(4, 3))
    x = rng.standard_normal((6, 4)).astype(np.float32)
    seq(x)
    mask = seq[0]._mask.copy()
    seq.eval()
    g = np.ones((6, 3), np.float32)
    gx = seq.backward(g)
    np.testing.assert_allclose(gx, (g @ seq[1].weight.data) * mask, rtol=1e-6)
    kept = gx.copy()
    seq.train()
    seq(x)
    seq.backward(g * 3)
    np.testing.assert_array_equal(gx, kept)


def test_container_protocol():
    layers = [nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and list(seq) == layers and seq[1] is layers[1] and seq[-1] is layers[2]
    head = seq[:2]
    assert isinstance(head, nn.Sequential) and list(head) == layers[:2]
    assert [name for name, _ in seq.named_parameters()] == ["0.weight", "0.bias",
                                                            "2.weight", "2.bias"]
    seq.append(nn.Sigmoid())
    assert len(seq) == 4
    with pytest.raises(ValueError, match="already in this Sequential"):
        seq.append(layers[1])
    with pytest.raises(TypeError, match="expected a Module"):
        nn.Sequential(lambda x: x)


def test_a_layer_nested_twice_is_refused_as_one_listed_twice():
    """A layer listed twice is refused; one also run by a nested Sequential was not, and
    both positions shared its buffers and saved forward: Linear, Tanh, Sequential(Linear)
    (the same Linear) wrote the second output over its input (numba, cython: the output
    off by 0.07), and a max or average pool's backward wrote past its buffer (the heap
    corrupted: 'double free or corruption')."""
    lin, tanh = nn.Linear(3, 3), nn.Tanh()
    for make in (lambda: nn.Sequential(lin, tanh, nn.Sequential(lin)),
                 lambda: nn.Sequential(nn.Sequential(lin), tanh, nn.Sequential(nn.ReLU(), lin)),
                 lambda: nn.Sequential(nn.Sequential(nn.Sequential(lin)), lin),
                 lambda: nn.Sequential(lin, tanh).append(nn.Sequential(lin)),
                 lambda: nn.Sequential(lin, tanh).insert(0, nn.Sequential(lin)),
                 lambda: nn.Sequential(lin, tanh).add_module("x", nn.Sequential(lin))):
        with pytest.raises(ValueError, match="already in this Sequential"):
            make()
    for layers in ([nn.Sequential(lin)], [nn.Sequential(lin), lin]):
        with pytest.raises(ValueError, match="appears twice"):
            (nn.Sequential(tanh) if len(layers) == 2 else nn.Sequential(lin)).extend(layers)
    seq = nn.Sequential(lin, tanh, nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError, match="already in this Sequential"):
        seq[2] = nn.Sequential(lin)
    assert isinstance(seq[2], nn.Sequential) and isinstance(seq[2][0], nn.ReLU)
    seq = nn.Sequential(nn.Linear(3, 3), nn.Sequential(lin))
    seq[1] = lin   # (replacing the Sequential that held it: once again)
    assert seq[1] is lin and len(list(seq.modules())) == 3

    class Tied(nn.Module):   # (a user module holding the layer, for its weight)
        def __init__(self, layer):
            super().__init__()
            self.layer = layer

        def forward(self, x):
            return x @ self.layer.weight.data

        def backward(self, grad_out):
            return grad_out @ self.layer.weight.data.T

    nn.Sequential(lin, tanh, Tied(lin))


class _Double(nn.Module):
    """A user module with its own forward/backward (no infer_shape): y = [x, x]."""

    def forward(self, x):
        return np.concatenate([x, x], axis=1)

    def backward(self, grad_out, need_grad_in=True):
        half = grad_out.shape[1] // 2
        return grad_out[:, :half] + grad_out[:, half:]


def test_user_module_inside_sequential(backend, rng):
    seq = nn.Sequential(nn.Linear(3, 2), _Double(), nn.Linear(4, 1))
    x = rng.standard_normal((5, 3)).astype(np.float32)
    y = seq(x)
    gx = seq.backward(np.ones_like(y))
    w1, w2 = seq[0].weight.data, seq[2].weight.data
    h = x @ w1.T + seq[0].bias.data
    np.testing.assert_allclose(y, np.concatenate([h, h], 1) @ w2.T + seq[2].bias.data, rtol=1e-5)
    np.testing.assert_allclose(gx, np.ones((5, 1)) @ w2 @ np.vstack([w1, w1]), rtol=1e-5)
    # A layer after the user module is still checked, with its index in the message.
    bad = nn.Sequential(nn.Linear(3, 2), _Double(), nn.Linear(3, 1))
    with pytest.raises(ValueError, match=r"Sequential layer 2: Linear.*\(\*, 3\), got \(5, 4\)"):
        bad(x)


def test_named_layers_add_module_and_torch_state_dict(rng):
    """Sequential(OrderedDict(...)) and add_module name the layers as PyTorch does, run
    them in order, and load the state dict of the same torch model."""
    import collections

    import torch
    ours = nn.Sequential(collections.OrderedDict(
        [("fc1", nn.Linear(3, 4)), ("act", nn.Tanh()), ("fc2", nn.Linear(4, 2))]))
    ours.add_module("out", nn.Sigmoid())
    theirs = torch.nn.Sequential(collections.OrderedDict(
        [("fc1", torch.nn.Linear(3, 4)), ("act", torch.nn.Tanh()),
         ("fc2", torch.nn.Linear(4, 2))])).double()
    theirs.add_module("out", torch.nn.Sigmoid())
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.double().load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = rng.standard_normal((5, 3))
    np.testing.assert_allclose(ours(x), theirs(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-12)
    assert len(ours) == 4 and ours.fc2 is ours[2] and isinstance(ours[-1], nn.Sigmoid)
    ours.add_module("act", nn.ReLU())      # replaces the layer in its place, as torch's
    theirs.add_module("act", torch.nn.ReLU())
    assert [type(m).__name__ for m in ours] == [type(m).__name__ for m in theirs]
    with pytest.raises(KeyError, match="without '.'"):
        ours.add_module("a.b", nn.ReLU())


def test_register_parameter_and_add_module_on_a_user_module():
    module = nn.Module()
    module.register_parameter("scale", nn.Parameter(np.ones(3)))
    module.add_module("inner", nn.Linear(2, 2))
    module.register_parameter("unused", None)
    assert [n for n, _ in module.named_parameters()] == ["scale", "inner.weight", "inner.bias"]
    assert module.scale.numel() == 3 and module.unused is None
    with pytest.raises(TypeError, match="expected a Parameter or None"):
        module.register_parameter("w", np.ones(2))
    with pytest.raises(TypeError, match="expected a Module or None"):
        module.add_module("m", 3)


def test_parameters_are_array_like_to_numpy():
    """np.sum(p), np.asarray(p) and p.numpy() see a Parameter's values, as NumPy
    functions see a torch parameter's (p.detach().numpy())."""
    layer = nn.Linear(3, 2)
    w = layer.weight
    assert w.numpy() is w.data
    assert np.asarray(w) is w.data
    assert np.sum(w) == w.data.sum()
    assert np.asarray(w, dtype=np.float64).dtype == np.float64
    copied = np.array(w, copy=True)
    copied[0, 0] += 1
    assert copied[0, 0] != w.data[0, 0]
    assert float(np.abs(nn.init.zeros_(layer.bias)).max()) == 0.0


def test_module_list_repr_writes_runs_of_equal_children_once_as_torch():
    import torch
    ours = nn.ModuleList([nn.Linear(2, 3), nn.Linear(2, 3), nn.ReLU(),
                          nn.Sequential(nn.Linear(3, 3)), nn.Sequential(nn.Linear(3, 3))])
    theirs = torch.nn.ModuleList([torch.nn.Linear(2, 3), torch.nn.Linear(2, 3),
                                  torch.nn.ReLU(), torch.nn.Sequential(torch.nn.Linear(3, 3)),
                                  torch.nn.Sequential(torch.nn.Linear(3, 3))])
    assert repr(ours) == repr(theirs)
    assert repr(nn.ModuleList()) == repr(torch.nn.ModuleList()) == "ModuleList()"


def test_parameter_dict_adds_a_plain_dicts_entries_in_sorted_order_as_torch():
    from collections import OrderedDict

    import torch
    mine = {"b": np.ones(1), "a": np.zeros(1)}
    ours = nn.ParameterDict({k: nn.Parameter(v) for k, v in mine.items()})
    theirs = torch.nn.ParameterDict({k: torch.nn.Parameter(torch.from_numpy(v))
                                     for k, v in mine.items()})
    assert list(ours.keys()) == list(theirs.keys()) == ["a", "b"]
    ordered = nn.ParameterDict(OrderedDict((k, nn.Parameter(v)) for k, v in mine.items()))
    assert list(ordered.keys()) == ["b", "a"]


def test_backward_refuses_after_a_layer_ran_on_its_own(backend):
    """model[0](x) after model(x) (to look at a pre-activation) replaced what the
    Linear's backward reads, and a fused Linear + ReLU then dropped the ReLU's mask:
    the Sequential's backward refuses instead of returning wrong gradients."""
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    g = np.ones((5, 2), np.float32)
    model(x)
    with fastnn.no_grad():
        model[0](x)
    with pytest.raises(RuntimeError, match="layer 0.*forward of its own"):
        model.backward(g)
    reference = copy.deepcopy(model)
    reference.zero_grad()
    model.zero_grad()
    reference(x)
    expected = reference.backward(g)
    model(x)   # forward again: backward is right
    np.testing.assert_array_equal(model.backward(g), expected)


@pytest.mark.parametrize("backend_name", ["numpy", "numba", "cython"])
def test_fused_sigmoid_keeps_float64_tails(backend_name):
    """numba's fused Linear + Sigmoid clamped float64 at float32's exp range (6e-39
    below -88), where the unfused sigmoid gives the float64 value."""
    if backend_name not in fastnn.backends():
        pytest.skip(f"{backend_name} not available")
    with fastnn.use_backend(backend_name):
        lin = nn.Linear(1, 1, bias=False, dtype=np.float64)
        lin.weight.data = np.ones((1, 1))
        model = nn.Sequential(lin, nn.Sigmoid())
        x = np.array([[-89.0], [-100.0], [-300.0], [5.0]])
        y = model(x)
    np.testing.assert_allclose(y[:, 0], 1 / (1 + np.exp(-x[:, 0])), rtol=1e-15)


def test_flows_the_refusal_leaves_alone(backend):
    """An activation fused into its Linear and also used elsewhere (the Linear keeps
    what its backward reads), a shared passthrough layer run again on the same shapes,
    and a pickled copy between forward and backward all differentiate as before."""
    import pickle
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5, 3)).astype(np.float32)
    g = np.ones((5, 2), np.float32)

    fastnn.manual_seed(2)
    act = nn.ReLU()
    seq, lin2 = nn.Sequential(nn.Linear(3, 4), act), nn.Linear(4, 2)
    twin_seq, twin_lin2 = copy.deepcopy(seq), copy.deepcopy(lin2)
    twin_act = nn.ReLU()
    y = act(lin2(seq(x)))
    grad = seq.backward(lin2.backward(act.backward(g)))
    twin_seq[1] = nn.ReLU()
    np.testing.assert_array_equal(twin_act(twin_lin2(twin_seq(x))), y)
    np.testing.assert_array_equal(twin_seq.backward(twin_lin2.backward(twin_act.backward(g))),
                                  grad)

    flat = nn.Flatten()
    a, b = nn.Sequential(nn.Conv2d(1, 2, 3), flat), nn.Sequential(nn.Conv2d(1, 2, 3), flat)
    xi = rng.standard_normal((2, 1, 5, 5)).astype(np.float32)
    ya, yb = a(xi), b(xi)
    b.backward(np.ones_like(yb))
    assert a.backward(np.ones_like(ya)).shape == xi.shape

    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 4), nn.ReLU(),
                          nn.Linear(4, 2))
    model(x)
    clone = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(clone.backward(g), model.backward(g))
    with fastnn.no_grad():
        model[2](np.ones((5, 4), np.float32))
    with pytest.raises(RuntimeError, match="layer 2: Linear"):
        model.backward(g)


def test_a_model_serving_short_lived_threads_never_raises():
    """A thread-per-request server on one model: each new buffer shape prunes the
    buffers of ended threads, which iterated the layer's dict while other threads added
    theirs ('dictionary changed size during iteration', KeyError) at a fine switch
    interval."""
    import sys
    import threading
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Tanh(), nn.Linear(8, 2)).eval()
    errors = []

    def serve(seed):
        sizes = np.random.default_rng(seed).integers(1, 50, 10)
        try:
            with fastnn.no_grad():
                for n in sizes:
                    assert model(np.ones((int(n), 8), np.float32)).shape == (n, 2)
        except Exception as exc:   # (collected: an exception in a thread is not raised)
            errors.append(repr(exc))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for wave in range(12):
            threads = [threading.Thread(target=serve, args=(wave * 16 + k,))
                       for k in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
    finally:
        sys.setswitchinterval(interval)
    assert errors == []


class _FeatureBank(nn.Module):
    """A user module keeping every input and gradient it is given (PyTorch code keeps
    the tensors)."""

    def __init__(self):
        super().__init__()
        self.seen, self.grads = [], []

    def forward(self, x):
        self.seen.append(x)
        return x * 1.0

    def backward(self, grad_out):
        self.grads.append(grad_out)
        return grad_out * 1.0


def test_a_user_module_in_a_sequential_keeps_what_it_is_given(backend):
    """A feature bank appending its input (PyTorch code keeps the tensor) between layers
    got the previous layer's reused buffer: every entry became the last batch. Likewise
    the gradient its backward is given. Flatten between them passes a view through."""
    bank = _FeatureBank()
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Flatten(), bank, nn.Linear(3, 2),
                          nn.ReLU(), nn.Linear(2, 2))
    rng = np.random.default_rng(0)
    with fastnn.use_backend(backend):
        outs, grads = [], []
        for _ in range(3):
            y = model(rng.standard_normal((5, 4)).astype(np.float32))
            outs.append(bank.seen[-1].copy())
            model.backward(np.ones_like(y))
            grads.append(bank.grads[-1].copy())
        for kept, value in zip(bank.seen, outs):
            np.testing.assert_array_equal(kept, value)
        for kept, value in zip(bank.grads, grads):
            np.testing.assert_array_equal(kept, value)
        assert len({id(a) for a in bank.seen}) == 3


@pytest.mark.parametrize("grad", [True, False], ids=["grad", "no_grad"])
def test_a_user_module_after_a_nested_sequential_keeps_what_it_is_given(backend, grad):
    """A nested Sequential holding a user module (an opaque step) handed the feature bank
    after it its last layer's reused array (with gradients on the layer's buffer, under
    no_grad the output array the outer Sequential lends): every entry became the last
    batch. Likewise the input gradient of a nested Sequential before a bank's backward."""
    class Scale(nn.Module):
        def forward(self, x):
            return x * 2.0

        def backward(self, grad_out):
            return grad_out * 2.0

    fastnn.manual_seed(0)
    bank = _FeatureBank()
    model = nn.Sequential(nn.Linear(4, 3), nn.Sequential(Scale(), nn.Linear(3, 3)), bank,
                          nn.Sequential(nn.Linear(3, 3), Scale(), nn.Linear(3, 3)),
                          nn.ReLU(), nn.Linear(3, 2))
    rng = np.random.default_rng(0)
    with fastnn.use_backend(backend):
        xs = [rng.standard_normal((5, 4)).astype(np.float32) for _ in range(3)]
        for x in xs:
            with fastnn.set_grad_enabled(grad):
                y = model(x)
            if grad:
                model.backward(np.ones_like(y))
        for kept, x in zip(bank.seen, xs):   # (each call's own, by the public calls)
            np.testing.assert_array_equal(kept, model[1](model[0](x)))
        assert len({id(a) for a in bank.seen}) == 3
        if grad:
            for kept, x in zip(bank.grads, xs):
                tail = nn.Sequential(*[copy.deepcopy(m) for m in list(model)[3:]])
                y = tail(model[1](model[0](x)))
                np.testing.assert_array_equal(kept, tail.backward(np.ones_like(y)))
