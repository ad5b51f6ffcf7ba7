"""README.md's claims checked section by section (the probe's scripts compared them with
PyTorch 2.13 on the numpy, numba and cython backends). Pins what it fixed:

* "Empty batches run through every layer": GroupNorm and InstanceNorm1d/2d/3d, and a
  non-divisible AdaptiveMaxPool2d/1d, raised "cannot reshape array of size 0"
  (fastnn/nn/groupnorm.py, fastnn/nn/adaptive.py); GaussianNLLLoss's empty mean warned.
* "every op and layer takes C-contiguous or strided arrays": in a Sequential, a strided
  array returned by a user module (forward, or its backward's gradient) reached the next
  layer's Cython kernel as is: "ndarray is not C-contiguous" (fastnn/nn/container.py).
* "A bad option value ... exits with status 2 ... before any training, for every
  command": a --metrics/--plot/--save/--out path under an existing file, and `demo --out`
  naming a file, failed with a traceback after the whole run; `bench --threads 0` ran on
  every core (fastnn/cli.py, fastnn/experiments/common.py, fastnn/bench_cli.py).
* and the README statements corrected (checkpoints of a user model need model=, dream's
  remainder steps, MarginRankingLoss's gradients, the optimizer step an int).
"""
import copy
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import cli, nn, optim

torch = pytest.importorskip("torch")

BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]


@pytest.fixture(autouse=True)
def restore_backend():
    backend = fastnn.get_backend()
    fastnn.manual_seed(0)
    yield
    fastnn.set_backend(backend)


# --- What is guaranteed: empty batches ---------------------------------------------------

NORMS = [
    ("GroupNorm(2, 4)", (0, 4, 3, 3)), ("GroupNorm(4, 4, affine=False)", (0, 4, 5)),
    ("InstanceNorm1d(4, affine=True)", (0, 4, 5)), ("InstanceNorm2d(4)", (0, 4, 3, 3)),
    ("InstanceNorm2d(4, affine=True, track_running_stats=True)", (0, 4, 3, 3)),
    ("InstanceNorm3d(4)", (0, 4, 2, 2, 2)),
    ("AdaptiveMaxPool2d(4)", (0, 4, 6, 6)), ("AdaptiveMaxPool1d(4)", (0, 4, 6)),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("expr, shape", NORMS)
def test_empty_batch_through_group_instance_norm_and_adaptive_max_pool(backend, expr, shape):
    fastnn.set_backend(backend)
    layer = eval("nn." + expr)
    for mode in ("train", "eval"):
        getattr(layer, mode)()
        buffers = [b.copy() for b in layer.buffers()]
        out = layer.forward(np.zeros(shape, np.float32))
        grad = layer.backward(np.zeros_like(out))
        assert grad.shape == shape and out.shape[0] == 0
        if "Norm" in expr:  # PyTorch's shape (and the running statistics left alone)
            assert out.shape == shape
            assert all(np.array_equal(a, b) for a, b in zip(buffers, layer.buffers()))
        assert all(not p.grad.any() for p in layer.parameters())


@pytest.mark.parametrize("backend", BACKENDS)
def test_group_and_instance_norm_still_match_torch(backend):
    fastnn.set_backend(backend)
    x = np.random.default_rng(0).standard_normal((2, 6, 3, 4))
    go = np.random.default_rng(1).standard_normal(x.shape)
    for make in (lambda lib: lib.GroupNorm(2, 6),
                 lambda lib: lib.InstanceNorm2d(6, affine=True, track_running_stats=True)):
        mine, twin = make(nn).to(np.float64), make(torch.nn).double()
        for mode in ("train", "eval"):
            getattr(mine, mode)()
            getattr(twin, mode)()
            xt = torch.tensor(x, requires_grad=True)
            out = twin(xt)
            out.backward(torch.tensor(go))
            np.testing.assert_allclose(mine.forward(x), out.detach().numpy(), atol=1e-10)
            np.testing.assert_allclose(mine.backward(go), xt.grad.numpy(), atol=1e-10)


def test_gaussian_nll_empty_batch_mean_is_nan_without_warning():
    z = np.zeros((0, 3))
    loss = nn.GaussianNLLLoss()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(loss.forward(z, z, np.ones((0, 3))))
        grads = loss.backward()
    assert [g.shape for g in grads] == [(0, 3)] * 3


# --- What is guaranteed: strided arrays inside a Sequential ---------------------------------

class StridedView(nn.Module):
    """Identity whose output and input gradient are strided views (as x[:, ::2] is)."""

    def forward(self, x):
        big = np.zeros((x.shape[0], 2 * x.shape[1]), x.dtype)
        big[:, ::2] = x
        return big[:, ::2]

    def backward(self, grad):
        big = np.zeros((grad.shape[0], 2 * grad.shape[1]), grad.dtype)
        big[:, ::2] = grad
        return big[:, ::2]


class FortranOrder(nn.Module):
    def forward(self, x):
        return np.asfortranarray(x)

    def backward(self, grad):
        return np.asfortranarray(grad)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("user", [StridedView, FortranOrder])
def test_strided_arrays_from_a_user_module_inside_sequential(backend, user):
    fastnn.set_backend(backend)
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    for tail in ([nn.BatchNorm1d(4)], [nn.Linear(4, 3), nn.ReLU()], [nn.LayerNorm(4)]):
        model = nn.Sequential(nn.Linear(4, 4), user(), *tail)
        ref = nn.Sequential(nn.Linear(4, 4), *[copy.deepcopy(t) for t in tail])
        for p, q in zip(model.parameters(), ref.parameters()):
            q.data[...] = p.data
        out, want = model.forward(x), ref.forward(x)
        np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)
        g = np.random.default_rng(2).standard_normal(out.shape).astype(np.float32)
        np.testing.assert_allclose(model.backward(g), ref.backward(g), rtol=1e-5, atol=1e-6)
        for p, q in zip(model.parameters(), ref.parameters()):
            np.testing.assert_allclose(p.grad, q.grad, rtol=1e-5, atol=1e-6)


# --- Command line: bad option values exit 2 before any training ---------------------------

def _main(capsys, *argv):
    status = cli.main(list(argv))
    return status, capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ("train", "--dataset", "digits", "--metrics", "{f}/m.json"),
    ("train", "--dataset", "digits", "--plot", "{f}/a/curves.png"),
    ("train", "--dataset", "digits", "--save", "{f}/model.npz"),
    ("multitask", "--metrics", "{f}/m.json"),
    ("vae", "--out", "{f}/samples.png"),
    ("dream", "--checkpoint", "x.npz", "--target-class", "1", "--out", "{f}/img.png"),
    ("demo", "--out", "{f}"),
])
def test_output_paths_under_a_file_are_refused_before_training(tmp_path, capsys, argv):
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    status, err = _main(capsys, *[a.format(f=a_file) for a in argv], "--no-progress")
    assert status == 2, err
    assert err.startswith("error: --") and str(a_file) in err
    assert len(err.strip().splitlines()) == 1
    assert a_file.read_text() == ""


def test_bench_threads_zero_is_refused(capsys):
    status, err = _main(capsys, "bench", "--quick", "--threads", "0")
    assert status == 2 and "--threads must be positive" in err


def test_bench_quick_with_a_keyword_is_refused(capsys):
    status, err = _main(capsys, "bench", "--quick", "-k", "mlp_step")
    assert status == 2 and "-k selects benchmarks of the full run" in err


@pytest.mark.parametrize("keyword", ["", " "])
def test_bench_with_an_empty_keyword_is_refused(capsys, keyword):
    """`bench -k "$EXPR"` with an empty variable ran the full suite over the committed
    results (BENCHMARKS.md, bench/results/)."""
    status, err = _main(capsys, "bench", "-k", keyword)
    assert status == 2 and "-k expects a pytest -k expression, got an empty one" in err


def test_cli_lr_defaults_as_in_the_train_table():
    parser = cli.build_parser("train")
    defaults = {}
    for name in ("sgd", "adadelta", "adagrad", "rprop", "asgd", "adafactor", "adamax",
                 "nadam", "adam", "adamw", "radam", "rmsprop"):
        args = parser.parse_args(["train", "--optimizer", name])
        cli._check_train_args(args)
        defaults[name] = args.lr
    assert defaults == {"sgd": 0.1, "adadelta": 1.0, "adagrad": 0.01, "rprop": 0.01,
                        "asgd": 0.01, "adafactor": 0.01, "adamax": 0.002, "nadam": 0.002,
                        "adam": 0.001, "adamw": 0.001, "radam": 0.001, "rmsprop": 0.001}


# --- Statements the probe corrected in README --------------------------------------------

class _UserReLU(nn.ReLU):
    pass


def test_checkpoint_of_a_user_model_loads_into_model(tmp_path):
    # a Sequential of fastnn.nn's own layers loads without model=; one holding a
    # user-defined module needs model=
    plain = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))
    fastnn.save(plain, tmp_path / "plain.npz")
    assert repr(fastnn.load(tmp_path / "plain.npz")) == repr(plain)
    model = nn.Sequential(nn.Linear(4, 5), _UserReLU(), nn.Linear(5, 2))
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    fastnn.save(model, tmp_path / "model.npz", optimizer=opt)
    with pytest.raises(fastnn.io.CheckpointError, match="pass model="):
        fastnn.load(tmp_path / "model.npz")
    back = nn.Sequential(nn.Linear(4, 5), _UserReLU(), nn.Linear(5, 2))
    assert fastnn.load(tmp_path / "model.npz", model=back) is back
    for p, q in zip(model.parameters(), back.parameters()):
        assert np.array_equal(p.data, q.data)
    built_in = fastnn.models.MLP(4, [5], 2)
    fastnn.save(built_in, tmp_path / "mlp.npz")
    assert type(fastnn.load(tmp_path / "mlp.npz")) is fastnn.models.MLP


def test_dream_remainder_steps_go_one_each_to_the_finest_scales(monkeypatch):
    from fastnn import visualize
    sizes = []
    original = visualize._resize_backward

    def counting(grad, h, w):
        sizes.append(h)
        return original(grad, h, w)

    monkeypatch.setattr(visualize, "_resize_backward", counting)
    fastnn.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 3))
    visualize.visualize_class(model, 1, steps=8, scales=(4, 2, 1), jitter=0)
    # 8 steps over 3 scales: 2, 3, 3 (the last one at full size needs no resize)
    assert sizes == [7, 7, 14, 14, 14]


def test_margin_ranking_backward_gives_the_two_score_gradients():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 6))
    y = np.where(rng.random(6) > 0.5, 1.0, -1.0)
    loss = nn.MarginRankingLoss(margin=0.2)
    loss.forward(a, b, y)
    grads = loss.backward()
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    torch.nn.MarginRankingLoss(margin=0.2)(ta, tb, torch.tensor(y)).backward()
    assert len(grads) == 2
    np.testing.assert_allclose(grads[0], ta.grad.numpy(), atol=1e-15)
    np.testing.assert_allclose(grads[1], tb.grad.numpy(), atol=1e-15)


def test_optimizer_state_dict_step_is_an_int_other_scalars_0d_arrays():
    p = nn.Parameter(np.ones(3))
    opt = optim.ASGD([p])
    p.grad[...] = 1.0
    opt.step()
    state = opt.state_dict()["state"][0]
    assert type(state["step"]) is int and state["step"] == 1
    for name in ("eta", "mu"):
        assert isinstance(state[name], np.ndarray) and state[name].shape == ()
