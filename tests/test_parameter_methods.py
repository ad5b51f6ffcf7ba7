"""The array and tensor methods a Parameter answers (``fastnn/nn/parameter_ops.py``):
NumPy's meaning where NumPy has the name, PyTorch's where only PyTorch has it, pinned
against NumPy on the values and against PyTorch live. Before, ``layer.bias.copy()``,
``w.mean()``, ``w.reshape(-1)``, ``w.abs().max()``, ``w.norm()`` and ``w > 0`` were
AttributeErrors or TypeErrors, where ``np.mean(w)`` worked."""
import copy
import pickle

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim
from fastnn.nn.parameter_ops import ARRAY_METHODS

torch = pytest.importorskip("torch")


def pair(dtype=np.float32, shape=(3, 4), seed=0):
    values = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return nn.Parameter(values), torch.nn.Parameter(torch.from_numpy(values.copy()))


def host(t):
    return t.detach().numpy()


@pytest.mark.parametrize("name", ARRAY_METHODS)
def test_every_numpy_method_is_numpys_on_the_values(name):
    p, _ = pair(np.float64)
    args = {"astype": (np.float32,), "clip": (-0.5, 0.5), "dot": (np.ones(4),),
            "repeat": (2,), "reshape": (2, 6), "swapaxes": (0, 1), "round": (1,)}.get(name, ())
    got, want = getattr(p, name)(*args), getattr(p.data.copy(), name)(*args)
    if isinstance(want, tuple):   # nonzero
        assert len(got) == len(want)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
    else:
        assert type(got) is type(want) and np.asarray(got).dtype == np.asarray(want).dtype
        np.testing.assert_array_equal(got, want)
    assert isinstance(p, nn.Parameter)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_reductions_take_pytorchs_dim_and_keepdim(dtype):
    p, t = pair(dtype)
    for name in ("sum", "mean", "prod", "argmax", "argmin", "cumsum", "cumprod"):
        got = getattr(p, name)(dim=1)
        np.testing.assert_allclose(got, host(getattr(t, name)(dim=1)), rtol=1e-6)
    for name in ("sum", "mean", "prod", "all", "any"):
        got = getattr(p, name)(dim=0, keepdim=True)
        want = getattr(t if name not in ("all", "any") else t != 0, name)(dim=0, keepdim=True)
        assert got.shape == tuple(want.shape)
        np.testing.assert_allclose(got, host(want), rtol=1e-6)
    # the axis= spelling is NumPy's, the default reductions of the whole array agree
    np.testing.assert_allclose(p.mean(axis=0), host(t.mean(0)), rtol=1e-6)
    assert p.max() == t.max().item() and p.min() == t.min().item()
    # std and var are NumPy's (ddof 0), as np.std(p); PyTorch's unbiased is ddof=1
    assert p.std() == np.std(p.data) and p.var(ddof=1) == pytest.approx(t.var().item())
    # where PyTorch's dim= means something else, the error says what to write
    for name, hint in (("max", "argmax"), ("min", "argmin"), ("std", "ddof=1"),
                       ("var", "ddof=1")):
        with pytest.raises(TypeError, match=f"takes no dim= or keepdim=: .*{hint}"):
            getattr(p, name)(dim=0)
    with pytest.raises(TypeError, match="takes no dim="):
        p.clip(0, 1, keepdim=True)


def test_views_write_the_parameter_as_pytorchs_views():
    p, t = pair()
    for view in (p.reshape(-1), p.ravel(), p.view(-1), p.view(2, 6), p.view((12,)), p.t(),
                 p.transpose(), p.swapaxes(0, 1), p.squeeze()):
        assert np.shares_memory(view, p.data)
    p.view(-1)[0] = 7.0
    t.data.view(-1)[0] = 7.0
    p.t()[1, 0] = 8.0
    t.data.t()[1, 0] = 8.0
    np.testing.assert_array_equal(p.data, host(t))
    assert p.view(2, -1).shape == tuple(t.view(2, -1).shape)
    assert p.view(np.int32).dtype == np.int32 and p.view(np.int32).shape == (3, 4)
    # copy and flatten give new arrays, as NumPy's (PyTorch's flatten may be a view)
    assert not np.shares_memory(p.copy(), p.data) and not np.shares_memory(p.flatten(), p.data)
    with pytest.raises(RuntimeError, match="at most 2 dimensions"):
        nn.Parameter(np.zeros((2, 2, 2))).t()
    with pytest.raises(ValueError):
        p.view(5, -1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_pytorch_only_methods_match_torch(dtype):
    p, t = pair(dtype, (3, 4, 5))
    tol = {"rtol": 1e-5 if dtype == np.float32 else 1e-12}
    np.testing.assert_array_equal(p.abs(), host(t.abs()))
    # transpose with two axes swaps them, as PyTorch's (NumPy's would read (0, 1) as
    # the identity permutation); a whole permutation or none is NumPy's
    for axes in ((0, 1), (1, 0), (0, 2), (2, 1), (-1, 0)):
        np.testing.assert_array_equal(p.transpose(*axes), host(t.transpose(*axes)))
    np.testing.assert_array_equal(p.transpose(), p.data.transpose())
    np.testing.assert_array_equal(p.transpose((2, 0, 1)), p.data.transpose((2, 0, 1)))
    np.testing.assert_array_equal(np.transpose(p, (1, 2, 0)), p.data.transpose((1, 2, 0)))
    assert np.shares_memory(p.transpose(0, 1), p.data)
    np.testing.assert_array_equal(p.clamp(-0.5, 0.25), host(t.clamp(-0.5, 0.25)))
    np.testing.assert_array_equal(p.clamp(min=0), host(t.clamp(min=0)))
    for norm_p in ("fro", 2, 1, 3, 0.5, 0, np.inf, -np.inf):
        for dim in (None, 0, 2, (0, 2), [1, 2]):
            for keepdim in (False, True):
                if norm_p == "fro" and dim is not None and not isinstance(dim, (tuple, list)):
                    continue   # (PyTorch's 'fro' over one dim: the 2-norm, as here)
                tp = float(norm_p) if isinstance(norm_p, (int, float)) else norm_p
                got = p.norm(norm_p, dim=dim, keepdim=keepdim)
                want = host(t.norm(tp, dim=dim, keepdim=keepdim))
                assert np.asarray(got).dtype == dtype and np.shape(got) == want.shape
                np.testing.assert_allclose(got, want, **tol)
    assert isinstance(p.norm(), np.floating)
    with pytest.raises(ValueError, match="'nuc'"):
        p.norm("nuc")
    for op in ("__lt__", "__le__", "__gt__", "__ge__"):
        got = getattr(p, op)(0.1)
        assert got.dtype == bool
        np.testing.assert_array_equal(got, host(getattr(t, op)(0.1)))
    np.testing.assert_array_equal(p > p.data * 0.5, host(t > t * 0.5))
    assert (p > 0).mean() == pytest.approx((t > 0).double().mean().item())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_methods_match_torch_and_keep_the_buffer(dtype):
    p, t = pair(dtype)
    other = np.random.default_rng(1).standard_normal((3, 4))   # float64: cast, as torch's
    data = p.data
    with torch.no_grad():
        assert p.add_(other, alpha=-0.3) is p
        t.add_(torch.from_numpy(other).to(t.dtype), alpha=-0.3)
        p.sub_(other[0]).mul_(1.5).div_(2.0).add_(1.0)
        t.sub_(torch.from_numpy(other[0]).to(t.dtype)).mul_(1.5).div_(2.0).add_(1.0)
        p.sub_(other, alpha=2)
        t.sub_(torch.from_numpy(other).to(t.dtype), alpha=2)
        assert p.clamp_(-0.75, 1.25) is p
        t.clamp_(-0.75, 1.25)
        p.clamp_(max=1.0)
        t.clamp_(max=1.0)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(p.data, host(t), rtol=tol, atol=tol)
    assert p.data is data and p.dtype == dtype
    with pytest.raises(RuntimeError, match="min or max"):
        p.clamp_()


def test_random_fills_follow_fastnns_seed_as_init():
    p, q = nn.Parameter(np.zeros((50, 40), np.float32)), nn.Parameter(np.zeros((50, 40)))
    fastnn.manual_seed(3)
    assert p.uniform_(-2, 3) is p
    fastnn.manual_seed(3)
    nn.init.uniform_(q, -2, 3)
    np.testing.assert_array_equal(p.data, q.data.astype(np.float32))
    assert -2 <= p.min() and p.max() < 3 and p.dtype == np.float32
    fastnn.manual_seed(4)
    p.normal_(1.0, 0.5)
    fastnn.manual_seed(4)
    nn.init.normal_(q, 1.0, 0.5)
    np.testing.assert_array_equal(p.data, q.data.astype(np.float32))
    assert abs(p.mean() - 1.0) < 0.05 and abs(p.std() - 0.5) < 0.05


def test_parameter_stays_a_parameter_everywhere_it_was_one():
    """Equality stays identity (parameters are found in lists, sets and dicts), NumPy's
    functions give what they gave, copies and optimizers are unchanged."""
    lin = nn.Linear(4, 3)
    params = list(lin.parameters())
    assert lin.weight in params and params.index(lin.bias) == 1 and len(set(params)) == 2
    assert (lin.weight == lin.weight) is True and (lin.weight != lin.bias) is True
    np.testing.assert_array_equal(np.max(lin.weight, axis=0), lin.weight.data.max(axis=0))
    assert np.sum(lin.weight) == lin.weight.data.sum()
    np.testing.assert_array_equal(np.clip(lin.weight, 0, 1), np.clip(lin.weight.data, 0, 1))
    assert np.reshape(lin.weight, -1).shape == (12,) and np.round(lin.weight, 1).shape == (3, 4)
    for dup in (copy.deepcopy(lin.weight), pickle.loads(pickle.dumps(lin.weight)),
                copy.copy(lin.weight)):
        assert isinstance(dup, nn.Parameter)
        np.testing.assert_array_equal(dup.data, lin.weight.data)
    assert lin.weight.nbytes == 48 and lin.weight.itemsize == 4
    # the usual logging of a training loop, beside an optimizer's flat buffer
    opt = optim.SGD(lin.parameters(), lr=0.1)
    lin.weight.grad[...] = 1.0
    before = lin.weight.copy()
    opt.step()
    np.testing.assert_allclose(before - lin.weight.data, 0.1, rtol=1e-6)
    assert lin.weight.abs().max() >= 0 and lin.weight.norm() == pytest.approx(
        np.linalg.norm(lin.weight.data), rel=1e-6)


def test_functional_takes_parameters_as_torchs_takes_them():
    """F.linear(x, layer.weight, layer.bias) and the other F functions with a layer's
    parameters (a TypeError 'got Parameter' before), against torch.nn.functional."""
    from fastnn.nn import functional as F
    rng = np.random.default_rng(2)
    fastnn.manual_seed(0)
    lin, conv = nn.Linear(5, 3), nn.Conv2d(2, 4, 3, padding=1)
    norm, emb, prelu = nn.LayerNorm(5), nn.Embedding(7, 5), nn.PReLU(2)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    img = rng.standard_normal((2, 2, 6, 6)).astype(np.float32)
    tt = {name: torch.from_numpy(np.array(p.data)) for name, p in
          [("lw", lin.weight), ("lb", lin.bias), ("cw", conv.weight), ("cb", conv.bias),
           ("nw", norm.weight), ("nb", norm.bias), ("ew", emb.weight), ("pw", prelu.weight)]}
    tx, timg = torch.from_numpy(x), torch.from_numpy(img)
    tf = torch.nn.functional
    cases = [
        (F.linear(x, lin.weight, lin.bias), tf.linear(tx, tt["lw"], tt["lb"])),
        (F.linear(x, weight=lin.weight, bias=lin.bias), tf.linear(tx, tt["lw"], tt["lb"])),
        (F.conv2d(img, conv.weight, conv.bias, padding=1),
         tf.conv2d(timg, tt["cw"], tt["cb"], padding=1)),
        (F.layer_norm(x, (5,), norm.weight, norm.bias),
         tf.layer_norm(tx, (5,), tt["nw"], tt["nb"])),
        (F.embedding(np.array([[1, 6], [0, 2]]), emb.weight),
         tf.embedding(torch.tensor([[1, 6], [0, 2]]), tt["ew"])),
        (F.prelu(img, prelu.weight), tf.prelu(timg, tt["pw"])),
        (F.relu(lin.weight), tf.relu(tt["lw"])),
    ]
    for got, want in cases:
        np.testing.assert_allclose(got, host(want), rtol=1e-5, atol=1e-6)
    # an in-place function writes the parameter itself, as PyTorch's under no_grad
    data = lin.weight.data
    assert F.relu_(lin.weight) is data and lin.weight.min() >= 0
    np.testing.assert_array_equal(lin.weight.data, host(tf.relu(tt["lw"])))
    # fastnn.ops takes arrays; its error names the Parameter's array
    with pytest.raises(TypeError, match=r"got Parameter \(its .data is the array\)"):
        fastnn.ops.relu(lin.weight)


def test_a_pytorch_tensor_given_for_an_array_is_named_with_its_way_out():
    """Mixing the libraries by mistake: the error says how to get the tensor's array."""
    from fastnn.nn import functional as F
    hint = r"got Tensor \(a PyTorch tensor: its .detach\(\).cpu\(\).numpy\(\) is the array\)"
    x, labels = np.ones((2, 3), np.float32), torch.tensor([0, 1])
    for call in (lambda: nn.Linear(3, 4)(torch.ones(2, 3)),
                 lambda: fastnn.ops.relu(torch.ones(2, 3)),
                 lambda: nn.CrossEntropyLoss()(x, labels), lambda: nn.NLLLoss()(x, labels),
                 lambda: F.cross_entropy(x, labels)):
        with pytest.raises((TypeError, ValueError), match=hint):
            call()


def test_a_parameter_is_weakly_referenced_as_a_tensor():
    """weakref.ref(p) and a WeakKeyDictionary keyed by parameters (an EMA helper, a
    memory check in a hyper-parameter search) work as on PyTorch's, and a dropped
    model's parameters die with it: before, TypeError 'cannot create weak reference'."""
    import gc
    import weakref
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = optim.Adam(model.parameters())
    ours = [weakref.ref(p) for p in model.parameters()]
    twin = torch.nn.Linear(3, 4)
    theirs = weakref.ref(twin.weight)
    table = weakref.WeakKeyDictionary({p: i for i, p in enumerate(model.parameters())})
    assert [r() for r in ours] == list(model.parameters()) and theirs() is twin.weight
    assert sorted(table.values()) == [0, 1, 2, 3]
    # pickles and copies carry the parameter's state, not the weak-reference slot
    p = model[0].weight
    for clone in (copy.copy(p), copy.deepcopy(p), pickle.loads(pickle.dumps(p))):
        np.testing.assert_array_equal(clone.data, p.data)
        assert weakref.ref(clone)() is clone
    del model, opt, p, clone, twin
    gc.collect()
    assert [r() for r in ours] == [None] * 4 and theirs() is None and len(table) == 0
