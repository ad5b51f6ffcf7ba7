"""Runtime hygiene, as a probe of DESIGN.md's three runtime promises found it (arrays
handed back stay the caller's, a failed call changes nothing, the thread count is
respected) over every nn module, loss and optimizer on every CPU backend: the defects it
found, pinned here."""
import numpy as np
import pytest

import fastnn
from fastnn import nn, ops, optim
from fastnn.data.loader import DataLoader, as_generator
from fastnn.train import TrainingDiverged, fit

torch = pytest.importorskip("torch")  # (after fastnn: see fastnn's OpenMP warning)


@pytest.mark.parametrize("shape", [(1, 4), (4, 1), (2, 2)])
def test_multi_margin_loss_refuses_a_target_of_two_dimensions_as_pytorch(shape):
    # a (1, N) or (N, 1) target of N labels was flattened and taken silently
    pred = np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32)
    target = np.array([1, 2, 3, 0]).reshape(shape)
    with pytest.raises(RuntimeError, match="target tensor should be 1-D"):
        torch.nn.MultiMarginLoss()(torch.tensor(pred), torch.tensor(target))
    with pytest.raises(ValueError, match="target tensor should be 1-D") as caught:
        nn.MultiMarginLoss()(pred, target)
    assert isinstance(caught.value, RuntimeError)
    ours = nn.MultiMarginLoss()(pred, target.reshape(-1))
    theirs = torch.nn.MultiMarginLoss()(torch.tensor(pred), torch.tensor(target.reshape(-1)))
    assert ours == pytest.approx(theirs.item(), rel=1e-6)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_max_unpool_names_a_list_input_as_the_other_layers_do(dims):
    # a list as the input was an AttributeError ('list' object has no attribute 'shape',
    # PyTorch's own is 'no attribute size') that did not name the layer, as DESIGN.md asks
    pool = {1: nn.MaxPool1d, 2: nn.MaxPool2d, 3: nn.MaxPool3d}[dims](2, return_indices=True)
    unpool = {1: nn.MaxUnpool1d, 2: nn.MaxUnpool2d, 3: nn.MaxUnpool3d}[dims](2)
    y, indices = pool(np.ones((1, 2) + (4,) * dims, np.float32))
    with pytest.raises(TypeError, match="expected input to be a numpy.ndarray, got list"):
        unpool(y.tolist(), indices)
    assert unpool(y, indices).shape == (1, 2) + (4,) * dims


def _bn_dropout_model(lazy=False):
    fastnn.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8),
                         nn.LazyBatchNorm1d(affine=False) if lazy else nn.BatchNorm1d(8),
                         nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 3))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_a_diverged_fit_leaves_running_statistics_as_before(backend, dtype):
    # the step whose loss was NaN left its parameters alone (as TrainingDiverged says),
    # but BatchNorm's running statistics became NaN (for good: every later update mixes
    # them in) and its batch count went on
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((24, 6)).astype(dtype), rng.integers(0, 3, 24)
    twins = []
    for diverge in (False, True):
        model = _bn_dropout_model().to(dtype=dtype)
        opt = optim.Adam(model.parameters(), lr=0.01)
        fastnn.manual_seed(7)
        fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=None, max_steps=2,
            batch_size=8, seed=1, progress=False, log=False)
        if diverge:
            with pytest.raises(TrainingDiverged, match="running statistics"):
                fit(model, nn.CrossEntropyLoss(), opt, (np.full_like(x, np.nan), y),
                    epochs=1, batch_size=8, seed=2, progress=False, log=False)
        twins.append((model, opt))
    (good, good_opt), (bad, bad_opt) = twins
    assert bad[1].num_batches_tracked == good[1].num_batches_tracked == 2
    for key, value in good.state_dict().items():
        np.testing.assert_array_equal(bad.state_dict()[key], value, err_msg=key)
    for model, opt in twins:   # and training on goes on as if it had not happened
        fastnn.manual_seed(9)
        fit(model, nn.CrossEntropyLoss(), opt, (x, y), epochs=1, batch_size=8, seed=3,
            progress=False, log=False)
    for key, value in good.state_dict().items():
        np.testing.assert_array_equal(bad.state_dict()[key], value, err_msg=key)
    assert np.isfinite(bad.eval()(x)).all()


def test_a_lazy_layers_statistics_made_at_the_first_step_are_kept_too():
    # a LazyBatchNorm1d without affine parameters makes its buffers at the fit's first
    # forward: the statistics a later diverged step changed are put back all the same
    model = _bn_dropout_model(lazy=True)
    opt = optim.SGD([*model[0].parameters(), *model[4].parameters()], lr=0.1)
    x = np.full((16, 6), np.nan, np.float32)
    first = next(iter(DataLoader(np.arange(16), np.arange(16), batch_size=8, shuffle=True,
                                 seed=as_generator(0))))[1]   # (fit's first batch)
    x[first] = np.random.default_rng(0).standard_normal((8, 6))
    with pytest.raises(TrainingDiverged, match="at step 2"):
        fit(model, nn.CrossEntropyLoss(), opt, (x, np.zeros(16, np.int64)), epochs=1,
            batch_size=8, seed=0, progress=False, log=False)
    assert model[1].num_batches_tracked == 1
    assert np.isfinite(model[1].running_mean).all() and np.isfinite(model[1].running_var).all()


@pytest.mark.parametrize("name", [b for b in ("numba", "cython") if b in fastnn.backends()])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("sq_scale", [0.0, 1.5])
def test_nadam_step_gives_the_same_bits_on_one_and_two_threads(name, dtype, sq_scale):
    # README: the element-wise kernels give the same bits for any thread count. The
    # Cython NAdam step (adaptive_moments_update with a gradient term) summed its two
    # products ra m + rg d with gcc fusing one product in the one-thread loop and the
    # other in the OpenMP region: float64 parameters 1 ulp apart on 1-25% of the values
    rng = np.random.default_rng(0)
    n = 300_000   # (above the parallel threshold)
    start = [rng.standard_normal(n).astype(dtype), rng.standard_normal(n).astype(dtype),
             (rng.standard_normal(n) * 0.1).astype(dtype),
             (rng.random(n) * 0.1 + 0.01).astype(dtype)]
    results = []
    previous = fastnn.get_num_threads()
    try:
        with fastnn.use_backend(name):
            for threads in (1, 2):
                fastnn.set_num_threads(threads)
                arrays = [a.copy() for a in start]
                ops.adaptive_moments_update(*arrays, 0.01, 0.002, 0.9, 0.999, sq_scale, 1e-8,
                                            0.01)
                results.append(arrays)
    finally:
        fastnn.set_num_threads(previous)
    for one, two in zip(*results):
        np.testing.assert_array_equal(one, two)


def _failing_hook(module, args, output):
    raise ValueError("a forward hook fails")


@pytest.mark.parametrize("make", [lambda: nn.BatchNorm1d(6),
                                  lambda: nn.Sequential(nn.Linear(6, 6), nn.BatchNorm1d(6)),
                                  lambda: nn.Sequential(nn.Linear(6, 6), nn.BatchNorm1d(6),
                                                        nn.Dropout(0.5)).eval()],
                         ids=["batchnorm", "sequential", "sequential-eval"])
def test_a_forward_hook_failing_on_the_called_module_puts_its_statistics_back(backend, make):
    # hooks on a Sequential's layers were handled (b58b9b1); a hook on the module called
    # itself left its running statistics and batch count updated by the failed call
    x = np.random.default_rng(0).standard_normal((8, 6)).astype(np.float32)
    outputs, states = [], []
    for fail in (False, True):
        fastnn.manual_seed(0)
        model = make()
        if fail:
            handle = model.register_forward_hook(_failing_hook)
            with pytest.raises(ValueError, match="a forward hook fails"):
                model(x)
            handle.remove()
        outputs.append(model(x))
        states.append(model.state_dict())
    np.testing.assert_array_equal(outputs[1], outputs[0])
    for key, value in states[0].items():
        np.testing.assert_array_equal(states[1][key], value, err_msg=key)


def test_a_fit_stopped_by_a_bad_batch_keeps_the_statistics_of_the_steps_before(backend):
    # labels out of range in the second batch: the error came after that batch's forward
    # had updated the running statistics and counted the batch
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((24, 6)).astype(np.float32), rng.integers(0, 3, 24)
    second = list(DataLoader(np.arange(24), np.arange(24), batch_size=8, shuffle=True,
                             seed=as_generator(0)))[1][1]
    y_bad = y.copy()
    y_bad[second[0]] = 7
    states = []
    for labels, steps in ((y, 1), (y_bad, None)):
        model = _bn_dropout_model()
        opt = optim.SGD(model.parameters(), lr=0.1)
        if steps:
            fit(model, nn.CrossEntropyLoss(), opt, (x, labels), epochs=None, max_steps=1,
                batch_size=8, seed=0, progress=False, log=False)
        else:
            with pytest.raises(ValueError, match="labels out of range"):
                fit(model, nn.CrossEntropyLoss(), opt, (x, labels), epochs=1, batch_size=8,
                    seed=0, progress=False, log=False)
        states.append(model.state_dict())
    assert states[1]["1.num_batches_tracked"] == 1
    for key, value in states[0].items():
        np.testing.assert_array_equal(states[1][key], value, err_msg=key)
