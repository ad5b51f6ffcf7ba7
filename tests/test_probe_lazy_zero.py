"""Probe of lazy zero_grad (set_to_none=True): every public path that reads or writes
gradients after it must give what eager zeroing (set_to_none=False) gives, on every CPU
backend. Complements tests/test_lazy_zero_grad.py (kernels, SGD/Adam training, tied
Linear weights, held arrays)."""
import copy
import os
import pickle

import numpy as np
import pytest

import fastnn
from fastnn import models, nn, ops, optim
from fastnn.nn import utils as nn_utils
from fastnn.train import fit

BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]
RNG = np.random.default_rng(0)
X = RNG.standard_normal((7, 6)).astype(np.float32)
G = RNG.standard_normal((7, 3)).astype(np.float32)


def _mlp():
    fastnn.manual_seed(1)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))


def _fb(model, x=X, g=G):
    model(x)
    model.backward(g)


def _grads(model):
    return [None if p.grad is None else p.grad.copy() for p in model.parameters()]


def _datas(model):
    return [p.data.copy() for p in model.parameters()]


def _same_lazy_and_eager(run, exact=True):
    """run(lazy) -> list of arrays (or None); the lazy and eager lists must match."""
    lazy, eager = run(True), run(False)
    assert len(lazy) == len(eager)
    for i, (a, b) in enumerate(zip(lazy, eager)):
        if a is None or b is None:
            assert a is None and b is None, i
        elif exact:
            np.testing.assert_array_equal(a, b, err_msg=str(i))
        else:
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7, err_msg=str(i))


OPTIMIZERS = {
    "sgd_nesterov": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, nesterov=True,
                                         weight_decay=0.01),
    "sgd_maximize": lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, maximize=True),
    "adamw": lambda ps: optim.AdamW(ps, lr=0.01),
    "amsgrad": lambda ps: optim.Adam(ps, lr=0.01, amsgrad=True),
    "rmsprop": lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
    "adagrad": lambda ps: optim.Adagrad(ps, lr=0.1),
    "adadelta": lambda ps: optim.Adadelta(ps),
    "adamax": lambda ps: optim.Adamax(ps),
    "nadam": lambda ps: optim.NAdam(ps),
    "radam": lambda ps: optim.RAdam(ps),
    "asgd": lambda ps: optim.ASGD(ps, t0=1),
    "rprop": lambda ps: optim.Rprop(ps),
    "adafactor": lambda ps: optim.Adafactor(ps, lr=0.01),
    "muon": lambda ps: optim.Muon([p for p in ps if p.ndim == 2], lr=0.01),
}


def _train_steps(make_opt, variant, lazy):
    """Three zero_grad / backward / step rounds of _mlp under one variant: 'groups' (two
    param groups), 'frozen' (a requires_grad=False weight), 'none' (.grad set to None
    mid-way), 'noback' (a step with no backward after zero_grad), 'two' (two optimizers
    over the same parameters, both zeroed through the optimizer)."""
    model = _mlp()
    params = list(model.parameters())
    if variant == "groups" and make_opt is not OPTIMIZERS["muon"]:
        opt = make_opt([{"params": params[:2]}, {"params": params[2:], "lr": 0.003}])
    else:
        opt = make_opt(params)
    opts = [opt, make_opt(params)] if variant == "two" else [opt]
    if variant == "frozen":
        model[2].weight.requires_grad = False
    for i in range(3):
        if variant == "two":
            for o in opts:
                o.zero_grad(set_to_none=lazy)
        else:
            model.zero_grad(set_to_none=lazy)
        if variant == "none" and i == 1:
            model[0].weight.grad = model[0].bias.grad = None
        if not (variant == "noback" and i == 2):
            _fb(model, X * (i + 1))
        for o in opts:
            o.step()
    return _grads(model) + _datas(model)


# (a step with no backward since zero_grad is not here: lazy zeros are PyTorch's None
# grad there, skipped, eager ones are zeros: tests/test_lazy_zero_grad.py checks both
# against PyTorch)
@pytest.mark.parametrize("variant", ["groups", "frozen", "none", "two"])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_steps_as_with_eager_zeroing(name, variant):
    _same_lazy_and_eager(lambda lazy: _train_steps(OPTIMIZERS[name], variant, lazy))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("zero_with", ["optimizer", "module"])
def test_lbfgs_closure_with_lazy_zero_grad(backend, zero_with):
    def run(lazy):
        model = _mlp()
        opt = optim.LBFGS(model.parameters(), lr=0.5, max_iter=5,
                          line_search_fn="strong_wolfe")
        loss_fn = nn.MSELoss()

        def closure():
            (opt if zero_with == "optimizer" else model).zero_grad(set_to_none=lazy)
            loss = loss_fn(model(X), G)
            model.backward(loss_fn.backward())
            return loss

        with fastnn.use_backend(backend):
            for _ in range(2):
                opt.step(closure)
        return _grads(model) + _datas(model)
    _same_lazy_and_eager(run)


def test_grad_utilities_read_zeros_then_accumulate():
    """clip_grad_norm_/clip_grad_value_/parameters_to_vector/get_total_norm between a lazy
    zero_grad and the micro-batch backwards, and after them."""
    def run(lazy):
        model = _mlp()
        _fb(model)
        model.zero_grad(set_to_none=lazy)
        out = [nn_utils.parameters_to_vector(model.parameters()),
               np.array(nn_utils.get_total_norm([p.grad for p in model.parameters()]))]
        out.append(np.array(nn_utils.clip_grad_norm_(model.parameters(), 0.1)))
        _fb(model)
        nn_utils.clip_grad_value_(model.parameters(), 0.05)
        _fb(model, X * 2)
        out.append(np.array(nn_utils.clip_grad_norm_(model.parameters(), 0.1)))
        return out + _grads(model)
    _same_lazy_and_eager(run)


def _copy_ways(model, how, tmp_path):
    """A copy of model made while its gradients are pending."""
    if how == "deepcopy":
        return copy.deepcopy(model)
    if how == "pickle":
        return pickle.loads(pickle.dumps(model))
    path = os.path.join(tmp_path, "m.fnn")
    fastnn.save(model, path)
    return fastnn.load(path)


@pytest.mark.parametrize("how", ["deepcopy", "pickle", "save_load"])
def test_copies_made_while_pending_read_zeros(how, tmp_path):
    def run(lazy):
        model = _mlp()
        _fb(model)
        model.zero_grad(set_to_none=lazy)
        twin = _copy_ways(model, how, str(tmp_path))
        _fb(twin)   # the copy's Linear layers overwrite; the original still reads zeros
        return _grads(twin) + _grads(model)
    _same_lazy_and_eager(run)


def test_dtype_conversion_and_state_dict_while_pending():
    def run(lazy):
        model = _mlp()
        _fb(model)
        model.zero_grad(set_to_none=lazy)
        model.load_state_dict(_mlp().state_dict())
        model.double()
        _fb(model, X.astype(np.float64), G.astype(np.float64))
        model.zero_grad(set_to_none=lazy)
        model.to(np.float32)
        return _grads(model)
    _same_lazy_and_eager(run)


def test_tied_embedding_and_linear_weight():
    """An Embedding's weight reused by a Linear head: the Linear backward (first) may
    overwrite, the Embedding's then adds."""
    def run(lazy):
        fastnn.manual_seed(0)
        emb, head = nn.Embedding(10, 6), nn.Linear(6, 10, bias=False)
        head.weight = emb.weight
        idx = np.array([1, 2, 3, 2])
        for _ in range(2):
            emb.zero_grad(set_to_none=lazy)
            y = head(emb(idx))
            emb.backward(head.backward(np.ones_like(y)))
        return [emb.weight.grad.copy()]
    _same_lazy_and_eager(run)


def test_parameter_shared_by_linear_and_layernorm():
    """The LayerNorm backward reads (and so fills) the shared bias first: the Linear then
    sees only its weight pending and must accumulate, not overwrite."""
    def run(lazy):
        fastnn.manual_seed(0)
        lin, norm = nn.Linear(6, 6), nn.LayerNorm(6)
        lin.bias = norm.bias
        ones = np.ones((7, 6), np.float32)
        for _ in range(2):
            lin.zero_grad(set_to_none=lazy)
            norm.zero_grad(set_to_none=lazy)
            lin(X)
            norm(X)
            norm.backward(ones)
            lin.backward(ones)
        return [lin.bias.grad.copy(), lin.weight.grad.copy()]
    _same_lazy_and_eager(run)


def test_backward_hooks_reading_grads_see_the_same_values():
    def run(lazy):
        model, seen = _mlp(), []
        model[2].register_full_backward_pre_hook(
            lambda m, go: seen.append(m.weight.grad.copy()))
        model[2].register_full_backward_hook(
            lambda m, gi, go: seen.append(m.weight.grad.copy()))
        _fb(model)
        model.zero_grad(set_to_none=lazy)
        _fb(model)
        return seen + _grads(model)
    _same_lazy_and_eager(run)


def test_backward_hooks_reading_an_unused_parameters_grad_leave_it_unstepped():
    """A hook logging the .grad of a parameter no loss reaches (PyTorch's hook reads
    None there) must not make it one the optimizer steps: Adam's weight decay moved
    the unused head, and its state advanced."""
    model, head, norms = _mlp(), nn.Linear(6, 2), []
    model.register_full_backward_pre_hook(
        lambda m, go: norms.append(float(np.abs(head.weight.grad).sum())))
    model[0].register_full_backward_hook(
        lambda m, gi, go: norms.append(float(np.abs(head.bias.grad).sum())))
    opt = optim.Adam(list(model.parameters()) + list(head.parameters()), lr=0.1,
                     weight_decay=0.1)
    before = _datas(head)
    for _ in range(2):
        opt.zero_grad()
        _fb(model)
        opt.step()
    assert norms == [0.0] * 4
    assert all(np.array_equal(p, q) for p, q in zip(_datas(head), before))
    assert sorted(opt.state_dict()["state"]) == [0, 1, 2, 3]


S = RNG.standard_normal((4, 2, 4, 10)).astype(np.float32)
XS = RNG.standard_normal((4, 6, 10)).astype(np.float32)


def _run_layer(name, model, k):
    """One forward/backward of model (micro-batch k)."""
    if name.startswith("linear_ce"):
        loss = model(XS[k], np.arange(6) % 5)
        model.backward(None if np.ndim(loss) == 0 else np.ones_like(loss))
    elif name == "adaptive_softmax":
        model(XS[k], np.array([0, 3, 7, 12, 15, 2]))
        model.backward()
    elif name == "mha":
        y = model(S[k], S[k], S[k])[0]
        model.backward(np.ones_like(y))
    elif name in ("encoder_layer", "gru"):
        y = model(S[k])
        y = y[0] if name == "gru" else y
        model.backward(np.ones_like(y))
    elif name == "multitask":
        a, logits = model(XS[k])
        model.backward(np.ones_like(a), np.ones_like(logits))
    elif name == "vae":
        model(XS[k], eps=np.ones((6, 2), np.float32))
        model.backward()


LAYERS = {
    "linear_ce": lambda: nn.LinearCrossEntropyLoss(10, 5, bias=True),
    "linear_ce_none": lambda: nn.LinearCrossEntropyLoss(10, 5, bias=True, reduction="none"),
    "adaptive_softmax": lambda: nn.AdaptiveLogSoftmaxWithLoss(10, 16, [4, 10],
                                                              head_bias=True),
    "mha": lambda: nn.MultiheadAttention(10, 2, batch_first=True),
    "encoder_layer": lambda: nn.TransformerEncoderLayer(10, 2, 16, dropout=0.0,
                                                        batch_first=True),
    "gru": lambda: nn.GRU(10, 5, batch_first=True, num_layers=2),
    "multitask": lambda: models.MultiTaskNet(10, 8, 7, 4, dropout=0.0),
    "vae": lambda: models.VAE(10, 2, hidden=(8, 8)),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", sorted(LAYERS))
def test_gradient_accumulation_through_layers_and_models(name, backend):
    """Layers that call linear_backward themselves or hold Linear sub-layers: zero_grad
    once, two micro-batches, an Adam step, twice."""
    def run(lazy):
        fastnn.manual_seed(3)
        model = LAYERS[name]()
        opt = optim.Adam(model.parameters(), lr=0.01)
        with fastnn.use_backend(backend):
            for step in range(2):
                model.zero_grad(set_to_none=lazy)
                for k in range(2):
                    _run_layer(name, model, 2 * step + k)
                opt.step()
        return _grads(model) + _datas(model)
    _same_lazy_and_eager(run)


@pytest.mark.parametrize("backend", BACKENDS)
def test_fit_loop_matches_eager_zeroing(backend):
    def run(lazy):
        fastnn.manual_seed(3)
        model = models.MLP(10, [8], 3)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        if not lazy:
            eager = opt.zero_grad
            opt.zero_grad = lambda set_to_none=True: eager(set_to_none=False)
        x, y = XS.reshape(-1, 10), np.arange(24) % 3
        with fastnn.use_backend(backend):
            fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=2, batch_size=8,
                progress=False, log=False)
        return _grads(model) + _datas(model)
    _same_lazy_and_eager(run)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("n, fin, fout", [(33000, 2, 5), (20000, 1, 1), (3, 2000, 1)])
def test_overwrite_matches_accumulate_into_zeros_on_tall_inputs(backend, n, fin, fout):
    """Row counts large enough that the compiled kernels split the column sums and the
    weight-gradient product across threads / blocks: overwriting must equal adding to
    zeros bit for bit, stale values gone."""
    rng = np.random.default_rng(n)
    x = rng.standard_normal((n, fin)).astype(np.float32)
    w = rng.standard_normal((fout, fin)).astype(np.float32)
    g = rng.standard_normal((n, fout)).astype(np.float32)
    with fastnn.use_backend(backend):
        y = ops.linear_forward(x, w, np.zeros(fout, np.float32), "sigmoid")
        want_w, want_b = np.zeros_like(w), np.zeros(fout, np.float32)
        ops.linear_backward(g, x, w, y, "sigmoid", grad_weight=want_w, grad_bias=want_b,
                            need_grad_in=False)
        got_w, got_b = np.full_like(w, 5.0), np.full(fout, -5.0, np.float32)
        ops.linear_backward(g, x, w, y, "sigmoid", grad_weight=got_w, grad_bias=got_b,
                            need_grad_in=False, accumulate=False)
    np.testing.assert_array_equal(got_w, want_w)
    np.testing.assert_array_equal(got_b, want_b)


@pytest.mark.parametrize("via", ["module", "optimizer"])
def test_gradient_array_shared_by_two_parameters_accumulates_both(via):
    """Fixed: two distinct Parameters holding one .grad array (b.weight.grad =
    a.weight.grad) were both left pending, so each Linear backward overwrote the array and
    the second wiped the first's gradient; such an array is now zeroed at once
    (fastnn/nn/module.py zero_grads_lazily), through the module or the optimizer (whose
    flat buffers the arrays are tied after)."""
    def run(lazy):
        fastnn.manual_seed(0)
        a, b = nn.Linear(6, 6), nn.Linear(6, 6)
        model = nn.Sequential(a, nn.Tanh(), b)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        b.weight.grad, b.bias.grad = a.weight.grad, a.bias.grad
        ones = np.ones((7, 6), np.float32)
        _fb(model, X, ones)
        (model if via == "module" else opt).zero_grad(set_to_none=lazy)
        _fb(model, X, ones)
        return [a.weight.grad.copy(), b.bias.grad.copy()]
    _same_lazy_and_eager(run, exact=False)


@pytest.mark.parametrize("vocab, n", [(50, 200), (1000, 30), (3, 40), (7, 1), (5, 0)])
def test_embedding_row_scatter_adds_as_np_add_at_bit_for_bit(vocab, n):
    # (add_rows replaced np.add.at's slow 2-D scatter: the distinct indices' first rows
    # by one fancy add, the repeats by np.add.at, each index's rows in their order)
    from fastnn.nn.embedding import add_rows
    rng = np.random.default_rng(n)
    table = rng.standard_normal((vocab, 6)).astype(np.float32)
    idx = rng.integers(0, vocab, n)
    rows = rng.standard_normal((n, 6)).astype(np.float32)
    expected = table.copy()
    np.add.at(expected, idx, rows)
    add_rows(table, idx, rows)
    np.testing.assert_array_equal(table, expected)
