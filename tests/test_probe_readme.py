"""README.md's promises checked as a new user would: the code blocks' APIs, the tables'
defaults and a sample of the "What is guaranteed" section's concrete claims, against
PyTorch where it has the same thing. Pins the fix the probe made: the nn losses take an
empty batch as PyTorch does (mean NaN, sum 0, no per-element losses; they raised)."""
import inspect
import warnings
from collections import OrderedDict

import numpy as np
import pytest

import fastnn
from fastnn import data, models, nn, ops, optim
from fastnn.nn import functional as F

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def numpy_backend():
    backend = fastnn.get_backend()
    fastnn.set_backend("numpy")
    fastnn.manual_seed(0)
    yield
    fastnn.set_backend(backend)


def tt(a):
    return torch.from_numpy(np.ascontiguousarray(a))


# --- Ten lines / Data / Command line sections -------------------------------------------

def test_signatures_and_defaults_as_documented():
    p = inspect.signature(models.MLP).parameters
    assert [p[k].default for k in ("activation", "negative_slope", "batchnorm", "dropout")] \
        == ["relu", 0.01, False, 0.0]
    p = inspect.signature(data.DataLoader).parameters
    assert [p[k].default for k in ("shuffle", "seed", "drop_last")] == [False, None, False]
    assert list(inspect.signature(fastnn.save).parameters) == ["model", "path", "optimizer",
                                                               "extra"]
    assert "restore_random" in inspect.signature(fastnn.load).parameters
    assert {"root", "download", "flatten"} <= set(inspect.signature(data.load).parameters)


def test_digits_dataset_as_in_the_data_table():
    x_train, y_train, x_test, y_test = data.load("digits")
    assert x_train.shape == (1438, 8, 8) and x_test.shape == (359, 8, 8)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert 0 <= x_train.min() and x_train.max() <= 1
    assert data.load("digits", flatten=True)[0].shape == (1438, 64)


def test_dataloader_views_in_order_copies_when_shuffled():
    x = np.arange(20, dtype=np.float32).reshape(10, 2)
    y = np.arange(10)
    batches = list(data.DataLoader(x, y, batch_size=4))
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    assert np.shares_memory(batches[0][0], x)
    assert len(list(data.DataLoader(x, y, batch_size=4, drop_last=True))) == 2
    xb, yb = next(iter(data.DataLoader(x, y, batch_size=4, shuffle=True, seed=1)))
    assert not np.shares_memory(xb, x)
    xb2, _ = next(iter(data.DataLoader(x, y, batch_size=4, shuffle=True, seed=1)))
    assert np.array_equal(xb, xb2)


def test_ten_lines_loop_reaches_high_accuracy_on_digits():
    x_train, y_train, x_test, y_test = data.load("digits", flatten=True)
    model = nn.Sequential(nn.Linear(64, 100), nn.ReLU(), nn.Linear(100, 10))
    loss_fn, opt = nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for epoch in range(3):
        for x, y in data.DataLoader(x_train, y_train, batch_size=32, shuffle=True, seed=epoch):
            loss = loss_fn.forward(model.forward(x), y)
            assert isinstance(loss, float)
            model.backward(loss_fn.backward())
            opt.step(); opt.zero_grad()
    assert (model.eval().forward(x_test).argmax(1) == y_test).mean() > 0.9


def test_fit_returns_the_documented_metrics():
    x_train, y_train, x_test, y_test = data.load("digits", flatten=True)
    model = models.MLP(64, [32], 10)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    from fastnn.train import fit
    m = fit(model, nn.CrossEntropyLoss(), opt, (x_train, y_train),
             (x_test, y_test), epochs=1, progress=False, log=False)
    # fit's dict (its docstring): per-epoch lists; the CLI's metrics JSON adds 'curves'
    for key in ("epoch", "test_accuracy", "train_accuracy", "test_loss", "train_loss",
                "seconds_per_epoch", "samples_per_second", "steps", "test_accuracy_final"):
        assert key in m, key
    assert m["steps"] == 12 and m["epoch"] == [1]


def test_save_load_round_trip(tmp_path):
    model = models.MLP(4, [3], 2)
    opt = optim.Adam(model.parameters(), lr=0.01)
    fastnn.save(model, tmp_path / "model.npz", optimizer=opt)
    back = fastnn.load(tmp_path / "model.npz")
    for (k, a), (k2, b) in zip(model.state_dict().items(), back.state_dict().items()):
        assert k == k2 and np.array_equal(a, b)
    (tmp_path / "bad.npz").write_bytes(b"not a checkpoint")
    with pytest.raises((ValueError, OSError)):
        fastnn.load(tmp_path / "bad.npz")


def test_functional_names_of_the_readme():
    for name in ("relu", "softmax", "conv2d", "batch_norm", "cross_entropy", "interpolate",
                 "conv_transpose2d", "triplet_margin_loss"):
        assert name in F.__all__
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 5))
    w = rng.standard_normal((4, 3, 3, 3))
    b = rng.standard_normal(4)
    out = F.conv2d(x, w, b, padding="same")
    ref = torch.nn.functional.conv2d(tt(x), tt(w), tt(b), padding="same").numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10)
    logits = rng.standard_normal((6, 4))
    labels = rng.integers(0, 4, 6)
    np.testing.assert_allclose(
        F.cross_entropy(logits, labels, label_smoothing=0.1),
        torch.nn.functional.cross_entropy(tt(logits), tt(labels), label_smoothing=0.1).item(),
        rtol=1e-12)
    np.testing.assert_allclose(F.softmax(logits, dim=1),
                               torch.softmax(tt(logits), 1).numpy(), rtol=1e-12)


# --- Backends and threads -------------------------------------------------------------

def test_backend_api():
    assert {"numpy", "numba", "cython"} <= set(fastnn.backends())
    with fastnn.use_backend("numba"):
        assert fastnn.backend_info()["name"] == "numba"
    assert fastnn.backend_info()["name"] == "numpy"
    assert fastnn.backend_info("cython")["debug"] in (True, False)
    with pytest.raises(ValueError):
        fastnn.set_backend("nope")


def test_ops_linear_forward_fuses_the_activation():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    w = rng.standard_normal((5, 3)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    np.testing.assert_allclose(ops.linear_forward(x, w, b, activation="relu"),
                               np.maximum(x @ w.T + b, 0), rtol=1e-6, atol=1e-6)


# --- What is guaranteed: shapes, dtypes, errors ------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_kept_and_strided_inputs_accepted(dtype):
    layer = nn.Linear(6, 3).to(dtype)
    x = np.random.default_rng(0).standard_normal((4, 12)).astype(dtype)[:, ::2]
    out = layer.forward(x)
    assert out.dtype == dtype and out.shape == (4, 3)


def test_float16_is_a_type_error_and_mismatched_dtypes_too():
    layer = nn.Linear(3, 2)
    with pytest.raises(TypeError):
        layer.forward(np.ones((2, 3), np.float16))
    with pytest.raises((TypeError, ValueError)):
        layer.forward(np.ones((2, 3), np.float64))


@pytest.mark.parametrize("backend", ["numpy", "numba", "cython"])
def test_empty_batch_and_nan_mean_loss(backend):
    """README: "Empty batches run through every layer; the mean loss over no elements is
    NaN, as in PyTorch" (the nn losses refused an empty batch with a ValueError)."""
    fastnn.set_backend(backend)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    out = model.forward(np.zeros((0, 3), np.float32))
    assert out.shape == (0, 2)
    loss_fn = nn.CrossEntropyLoss()
    assert np.isnan(loss_fn.forward(out, np.zeros(0, np.int64)))
    grad = loss_fn.backward()
    assert grad.shape == (0, 2) and grad.dtype == np.float32
    assert model.backward(grad).shape == (0, 3)


@pytest.mark.parametrize("name, kwargs, target", [
    ("MSELoss", {}, "same"), ("L1Loss", {}, "same"), ("SmoothL1Loss", {}, "same"),
    ("HuberLoss", {}, "same"), ("BCELoss", {}, "same"), ("BCEWithLogitsLoss", {}, "same"),
    ("BCELoss", {"weight": np.ones(3)}, "same"), ("KLDivLoss", {}, "same"),
    ("SoftMarginLoss", {}, "same"), ("PoissonNLLLoss", {}, "same"),
    ("MultiLabelSoftMarginLoss", {}, "same"), ("CrossEntropyLoss", {}, "labels"),
    ("CrossEntropyLoss", {"label_smoothing": 0.1, "weight": np.ones(3)}, "labels"),
    ("CrossEntropyLoss", {}, "same"), ("NLLLoss", {}, "labels"),
    ("NLLLoss", {"ignore_index": 1}, "labels"),
])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_empty_batch_losses_as_pytorch(name, kwargs, target, reduction):
    x = np.zeros((0, 3), np.float64)
    y = x if target == "same" else np.zeros(0, np.int64)
    loss_fn = getattr(nn, name)(reduction=reduction, **kwargs)
    out = loss_fn.forward(x, y)
    tkw = {k: (tt(v) if isinstance(v, np.ndarray) else v) for k, v in kwargs.items()}
    ref = getattr(torch.nn, name)(reduction=reduction, **tkw)(tt(x), tt(y)).numpy()
    assert np.shape(out) == ref.shape
    np.testing.assert_array_equal(out, ref)
    assert loss_fn.backward().shape == (0, 3)


def test_empty_batch_keeps_errors_for_no_classes():
    with pytest.raises(ValueError, match="at least one class"):
        nn.CrossEntropyLoss().forward(np.zeros((3, 0), np.float32), np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="non-empty"):
        nn.MultiLabelMarginLoss().forward(np.zeros((3, 0)), np.zeros((3, 0), np.int64))


def test_out_sharing_memory_is_refused():
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    w = np.ones((3, 3), np.float32)
    b = np.zeros(3, np.float32)
    with pytest.raises(ValueError):
        ops.linear_forward(x, w, b, out=x)


def test_error_names_the_layer_and_leaves_state():
    layer = nn.Linear(3, 2)
    w0 = layer.weight.data.copy()
    with pytest.raises(ValueError, match="Linear"):
        layer.forward(np.ones((2, 4), np.float32))
    assert np.array_equal(layer.weight.data, w0)


def test_labels_out_of_range():
    with pytest.raises(ValueError):
        nn.CrossEntropyLoss().forward(np.zeros((2, 3), np.float32), np.array([0, 3]))


def test_batchnorm_batch_of_one_in_training_keeps_statistics():
    bn = nn.BatchNorm1d(3)
    with pytest.raises(ValueError):
        bn.forward(np.ones((1, 3), np.float32))
    assert np.array_equal(bn.running_mean, np.zeros(3))
    assert np.array_equal(bn.running_var, np.ones(3))


def test_kernel_larger_than_padded_input():
    with pytest.raises(ValueError):
        nn.Conv2d(1, 1, 5).forward(np.ones((1, 1, 3, 3), np.float32))


def test_invalid_hyper_parameters():
    p = [nn.Parameter(np.zeros(3, np.float32))]
    with pytest.raises(ValueError):
        optim.SGD(p, lr=-0.1)
    with pytest.raises(ValueError):
        nn.Dropout(1.5)
    with pytest.raises(ValueError):
        nn.Dropout(-0.1)


def test_dropout_p_one_gives_zeros():
    out = nn.Dropout(1.0).forward(np.ones((3, 4), np.float32))
    assert np.array_equal(out, np.zeros((3, 4)))


def test_sequential_failure_restores_running_statistics():
    class Reshape(nn.Module):
        def forward(self, x):
            return x.reshape(x.shape[0], -1, 1)[:, :, 0][:, :2]

        def backward(self, g):
            return g

    model = nn.Sequential(nn.BatchNorm1d(4), Reshape(), nn.BatchNorm1d(3))
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    with pytest.raises(ValueError):
        model.forward(x)
    assert np.array_equal(model[0].running_mean, np.zeros(4))


# --- PyTorch semantics ----------------------------------------------------------------------

def test_cross_entropy_probability_targets_gradient():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 5))
    target = rng.random((4, 5))  # rows not summing to 1
    loss_fn = nn.CrossEntropyLoss()
    loss = loss_fn.forward(logits, target)
    grad = loss_fn.backward()
    lt = tt(logits).requires_grad_()
    ref = torch.nn.functional.cross_entropy(lt, tt(target))
    ref.backward()
    np.testing.assert_allclose(loss, ref.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, lt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_batchnorm_state_dict_loads_strictly_both_ways():
    bn = nn.BatchNorm1d(3)
    bn.forward(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
    sd = bn.state_dict()
    assert list(sd) == list(torch.nn.BatchNorm1d(3).state_dict())
    assert sd["num_batches_tracked"].shape == () and sd["num_batches_tracked"].dtype == np.int64
    twin = torch.nn.BatchNorm1d(3)
    twin.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in sd.items()}, strict=True)
    assert twin.num_batches_tracked.item() == 1
    back = nn.BatchNorm1d(3)
    back.load_state_dict({k: v.numpy() for k, v in twin.state_dict().items()})
    np.testing.assert_array_equal(back.running_mean, sd["running_mean"])


def test_bce_with_logits_finite_for_large_logits():
    loss_fn = nn.BCEWithLogitsLoss()
    x = np.array([[100.0, -100.0, 40.0]], np.float32)
    y = np.array([[0.0, 1.0, 0.0]], np.float32)
    loss = loss_fn.forward(x, y)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(tt(x), tt(y)).item()
    np.testing.assert_allclose(loss, ref, rtol=1e-6)
    assert np.all(np.isfinite(loss_fn.backward()))


def test_cross_entropy_options_and_all_ignored():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((6, 4))
    labels = np.array([0, 1, 2, 3, 1, 1])
    weight = rng.random(4)
    loss_fn = nn.CrossEntropyLoss(weight=weight, ignore_index=1, label_smoothing=0.2)
    mine = loss_fn.forward(logits, labels)
    ref = torch.nn.functional.cross_entropy(tt(logits), tt(labels), weight=tt(weight),
                                            ignore_index=1, label_smoothing=0.2).item()
    np.testing.assert_allclose(mine, ref, rtol=1e-12)
    assert np.isnan(nn.CrossEntropyLoss(ignore_index=1).forward(logits, np.ones(6, np.int64)))


def test_cross_entropy_unbatched_and_segmentation_shapes():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((2, 3, 4, 5))
    labels = rng.integers(0, 3, (2, 4, 5))
    np.testing.assert_allclose(
        nn.CrossEntropyLoss().forward(logits, labels),
        torch.nn.functional.cross_entropy(tt(logits), tt(labels)).item(), rtol=1e-12)
    np.testing.assert_allclose(
        nn.CrossEntropyLoss().forward(logits[0, :, 0, 0], np.array(2)),
        torch.nn.functional.cross_entropy(tt(logits[0, :, 0, 0]), torch.tensor(2)).item(),
        rtol=1e-12)


def test_nll_on_log_softmax():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 4))
    labels = rng.integers(0, 4, 5)
    lp = nn.LogSoftmax(dim=1).forward(logits)
    np.testing.assert_allclose(nn.NLLLoss().forward(lp, labels),
                               torch.nn.functional.cross_entropy(tt(logits), tt(labels)).item(),
                               rtol=1e-12)


def test_smooth_l1_beta_zero_is_l1_and_huber_is_delta_times_it():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((2, 7, 3))
    assert np.isclose(nn.SmoothL1Loss(beta=0.0).forward(a, b), nn.L1Loss().forward(a, b))
    np.testing.assert_allclose(nn.HuberLoss(delta=0.5).forward(a, b),
                               0.5 * nn.SmoothL1Loss(beta=0.5).forward(a, b), rtol=1e-12)


def test_recurrent_parameter_names():
    names = [n for n, _ in nn.LSTM(3, 4, proj_size=2).named_parameters()]
    assert names == [n for n, _ in torch.nn.LSTM(3, 4, proj_size=2).named_parameters()]
    assert "weight_hr_l0" in names
    assert isinstance(nn.GRU(3, 4), nn.RNNBase)


def test_multihead_attention_parameter_names():
    mha = nn.MultiheadAttention(8, 2)
    assert "in_proj_weight" in dict(mha.named_parameters())
    names = dict(nn.MultiheadAttention(8, 2, kdim=3, vdim=5).named_parameters())
    assert {"q_proj_weight", "k_proj_weight", "v_proj_weight", "out_proj.weight"} <= set(names)


def test_transformer_square_subsequent_mask():
    mask = nn.Transformer.generate_square_subsequent_mask(3)
    ref = torch.nn.Transformer.generate_square_subsequent_mask(3).numpy()
    np.testing.assert_array_equal(np.asarray(mask), ref)


def test_two_input_modules_return_a_gradient_tuple():
    rng = np.random.default_rng(0)
    x1, x2 = rng.standard_normal((2, 4, 3))
    for mod in (nn.CosineSimilarity(dim=1), nn.PairwiseDistance()):
        out = mod.forward(x1, x2)
        grads = mod.backward(np.ones_like(out))
        assert isinstance(grads, tuple) and len(grads) == 2


def test_loss_is_numpy_float64_with_item_and_criterion_idioms():
    loss_fn = nn.MSELoss()
    loss = loss_fn.forward(np.ones((2, 2), np.float32), np.zeros((2, 2), np.float32))
    assert isinstance(loss, np.float64) and loss.item() == 1.0
    assert loss_fn.to("cpu") is loss_fn and loss_fn.eval() is loss_fn
    assert loss_fn.float() is loss_fn
    assert list(loss_fn.parameters()) == []


def test_reduction_none_and_backward_of_losses():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((3, 4))
    loss_fn = nn.CrossEntropyLoss(reduction="none")
    losses = loss_fn.forward(logits, np.array([0, 1, 2]))
    assert losses.shape == (3,)
    assert loss_fn.backward().shape == (3, 4)


def test_linear_single_sample_and_batchnorm1d_ncl():
    assert nn.Linear(3, 2).forward(np.ones(3, np.float32)).shape == (2,)
    x = np.random.default_rng(0).standard_normal((4, 3, 5)).astype(np.float32)
    bn = nn.BatchNorm1d(3)
    ref = torch.nn.BatchNorm1d(3)(tt(x)).detach().numpy()
    np.testing.assert_allclose(bn.forward(x), ref, rtol=1e-5, atol=1e-5)


def test_maxpool_return_indices_and_ceil_mode():
    x = np.random.default_rng(0).standard_normal((1, 1, 5, 5)).astype(np.float32)
    out, idx = nn.MaxPool2d(2, return_indices=True).forward(x)
    ro, ri = torch.nn.functional.max_pool2d(tt(x), 2, return_indices=True)
    np.testing.assert_array_equal(out, ro.numpy())
    np.testing.assert_array_equal(idx, ri.numpy())
    assert nn.MaxPool2d(2, ceil_mode=True).forward(x).shape == (1, 1, 3, 3)


def test_model_to_float64_and_softmax_implicit_dim():
    model = models.MLP(3, [4], 2).to(np.float64)
    assert all(p.data.dtype == np.float64 for p in model.parameters())
    x = np.random.default_rng(0).standard_normal((2, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        np.testing.assert_allclose(nn.Softmax().forward(x),
                                   torch.nn.Softmax()(tt(x)).numpy(), rtol=1e-12)


def test_batchnorm_affine_bias_and_tracking_options():
    assert nn.BatchNorm1d(3, affine=False).weight is None
    bn = nn.BatchNorm1d(3, bias=False)
    assert bn.weight is not None and bn.bias is None
    assert list(bn.state_dict()) == list(torch.nn.BatchNorm1d(3, bias=False).state_dict())
    assert nn.BatchNorm1d(3, track_running_stats=False).running_mean is None


def test_conv_padding_string_kept_and_conv_attributes():
    conv = nn.Conv2d(2, 3, 3, padding="same")
    assert conv.padding == "same"
    assert conv.transposed is False and conv.padding_mode == "zeros"
    assert conv.output_padding == (0, 0)


def test_sequential_ordered_dict_names_and_parameter_helpers():
    model = nn.Sequential(OrderedDict(fc1=nn.Linear(3, 4), act=nn.ReLU(), fc2=nn.Linear(4, 2)))
    assert list(model.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    p = model.fc1.weight
    assert p.numel() == 12 and np.isclose(np.sum(p), p.data.sum())
    assert np.array_equal(p.numpy(), p.data)
    assert model.get_submodule("fc2") is model.fc2
    assert model.get_parameter("fc1.bias") is model.fc1.bias


def test_hooks_return_a_removable_handle_usable_as_context_manager():
    layer = nn.Linear(3, 2)
    seen = []
    with layer.register_forward_hook(lambda m, i, o: seen.append(o.shape)):
        layer(np.ones((1, 3), np.float32))
    layer(np.ones((1, 3), np.float32))
    assert seen == [(1, 2)]


def test_optimizer_defaults():
    p = [nn.Parameter(np.zeros(3, np.float32))]
    assert optim.SGD(p).defaults["lr"] == 1e-3
    assert optim.AdamW(p).defaults["weight_decay"] == 1e-2


def test_adam_decoupled_is_adamw_and_maximize():
    rng = np.random.default_rng(0)
    w0 = rng.standard_normal(5)
    g = rng.standard_normal(5)
    results = []
    for make in (lambda p: optim.Adam(p, lr=0.1, weight_decay=0.1, decoupled_weight_decay=True),
                 lambda p: optim.AdamW(p, lr=0.1, weight_decay=0.1)):
        p = nn.Parameter(w0.copy())
        opt = make([p])
        for _ in range(3):
            p.grad[...] = g
            opt.step()
        results.append(p.data.copy())
    np.testing.assert_array_equal(*results)
    p = nn.Parameter(w0.copy())
    opt = optim.SGD([p], lr=0.1, maximize=True)
    p.grad[...] = g
    opt.step()
    np.testing.assert_allclose(p.data, w0 + 0.1 * g)


def test_scheduler_and_utils_names_exist():
    for name in ("StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR",
                 "CosineAnnealingWarmRestarts", "LinearLR", "ConstantLR", "PolynomialLR",
                 "LambdaLR", "MultiplicativeLR", "SequentialLR", "OneCycleLR", "CyclicLR",
                 "ReduceLROnPlateau", "ChainedScheduler"):
        assert hasattr(optim.lr_scheduler, name), name
    for name in ("clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_",
                 "parameters_to_vector", "vector_to_parameters", "fuse_conv_bn_eval",
                 "fuse_linear_bn_eval", "skip_init"):
        assert hasattr(nn.utils, name), name
    for name in ("LBFGS", "Adafactor", "Muon", "RMSprop", "Adagrad", "Adamax", "NAdam", "RAdam",
                 "Adadelta", "Rprop", "ASGD"):
        assert hasattr(optim, name), name


def test_requires_grad_false_freezes_for_optimizers():
    layer = nn.Linear(3, 2)
    layer.requires_grad_(False)
    w0 = layer.weight.data.copy()
    opt = optim.SGD(layer.parameters(), lr=0.1)
    layer.forward(np.ones((4, 3), np.float32))
    layer.backward(np.ones((4, 2), np.float32))
    opt.step()
    assert np.array_equal(layer.weight.data, w0)


def test_init_deprecated_names_warn():
    p = nn.Parameter(np.zeros((3, 4), np.float32))
    with pytest.warns((UserWarning, FutureWarning, DeprecationWarning)):
        nn.init.xavier_uniform(p)
    nn.init.kaiming_normal_(p, generator=np.random.default_rng(0))
    assert p.data.std() > 0
    assert nn.init.calculate_gain("relu") == pytest.approx(np.sqrt(2))


def test_keywords_at_defaults_accepted_others_refused():
    nn.ReLU(inplace=True)
    nn.Dropout(0.5, inplace=True)
    nn.ConvTranspose2d(2, 3, 3, padding_mode="zeros")
    with pytest.raises(ValueError):
        nn.ConvTranspose2d(2, 3, 3, padding_mode="reflect")


def test_embedding_negative_index_is_index_error():
    with pytest.raises(IndexError):
        nn.Embedding(5, 2).forward(np.array([-1]))


def test_lazy_layer_parameters_before_dry_run_is_an_error():
    lazy = nn.LazyLinear(3)
    with pytest.raises((ValueError, RuntimeError)):
        list(lazy.parameters())
    lazy.forward(np.ones((2, 5), np.float32))
    assert type(lazy) is nn.Linear and lazy.weight.shape == (3, 5)


def test_zero_grad_set_to_none_zeroes_in_place():
    layer = nn.Linear(3, 2)
    opt = optim.SGD(layer.parameters(), lr=0.1)
    layer.forward(np.ones((4, 3), np.float32))
    layer.backward(np.ones((4, 2), np.float32))
    opt.zero_grad(set_to_none=True)
    assert layer.weight.grad is not None and not layer.weight.grad.any()


def test_triplet_with_plain_callable_distance_is_type_error():
    with pytest.raises(TypeError, match="has no backward"):
        nn.TripletMarginWithDistanceLoss(distance_function=lambda a, b: np.abs(a - b).sum(1))


def test_determinism_same_seed_same_parameters():
    def run():
        fastnn.manual_seed(3)
        model = models.MLP(8, [6], 3, dropout=0.2)
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        x = np.random.default_rng(0).standard_normal((16, 8)).astype(np.float32)
        y = np.arange(16) % 3
        loss_fn = nn.CrossEntropyLoss()
        for _ in range(3):
            loss_fn.forward(model.forward(x), y)
            model.backward(loss_fn.backward())
            opt.step(); opt.zero_grad()
        return [p.data.copy() for p in model.parameters()]
    for a, b in zip(run(), run()):
        assert np.array_equal(a, b)


def test_layer_norm_and_group_norm_match_torch():
    x = np.random.default_rng(0).standard_normal((4, 6, 3))
    np.testing.assert_allclose(nn.LayerNorm(3).to(np.float64).forward(x),
                               torch.nn.LayerNorm(3).double()(tt(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(nn.GroupNorm(2, 6).to(np.float64).forward(x),
                               torch.nn.GroupNorm(2, 6).double()(tt(x)).detach().numpy(),
                               rtol=1e-10, atol=1e-10)


def test_functional_has_the_names_readme_counts():
    # README: the 8 names it lists "and some 120 more (`F.__all__`)"
    assert len(F.__all__) >= 120


def test_import_fastnn_imports_no_backend_and_limits_spin():
    import subprocess
    import sys
    code = ("import os, sys, fastnn; "
            "print(any(m.startswith(('numba', 'fastnn.kernels')) for m in sys.modules), "
            "os.environ.get('GOMP_SPINCOUNT'), os.environ['OPENBLAS_THREAD_TIMEOUT'])")
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT",
                        "GOTO_THREAD_TIMEOUT")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, timeout=60).stdout.split()
    # GOMP_SPINCOUNT is left alone where SciPy's OpenBLAS will share the OpenMP pool
    from fastnn import blas_pool
    assert out == ["False", "None" if blas_pool.expected() else "1000", "16"]


@pytest.mark.parametrize("backend", ["numpy", "numba", "cython"])
def test_numerics_large_logits_bce_clamp_and_nan(backend):
    fastnn.set_backend(backend)
    logits = np.array([[1e4, 1e4]], np.float32)
    loss = nn.CrossEntropyLoss().forward(logits, np.array([0]))
    assert loss == pytest.approx(np.log(2), rel=1e-6)
    bce = nn.BCELoss().forward(np.array([0.0, 1.0], np.float32), np.array([1.0, 0.0], np.float32))
    assert bce == pytest.approx(100.0)
    assert np.isnan(nn.Sigmoid().forward(np.array([np.nan, 1.0], np.float32))[0])


def test_elementwise_ops_may_write_over_their_input():
    x = np.array([-1.0, 2.0], np.float32)
    out = ops.relu(x, out=x)
    assert out is x and np.array_equal(x, [0.0, 2.0])


def test_use_backend_is_per_thread():
    import threading
    seen = []
    with fastnn.use_backend("numba"):
        t = threading.Thread(target=lambda: seen.append(fastnn.get_backend()))
        t.start(); t.join()
        assert fastnn.get_backend() == "numba"
    assert seen == ["numpy"]


def test_more_of_pytorchs_api_as_listed():
    assert type(nn.RNNBase("LSTM", 3, 4)).__name__ in ("LSTM", "RNNBase")
    p = nn.Parameter(np.zeros(3))
    sched = optim.lr_scheduler.StepLR(optim.SGD([p], lr=0.1), 2)
    with pytest.warns(UserWarning):
        sched.step(3)   # PyTorch's deprecated step(epoch): the closed form, with a warning
    assert sched.get_last_lr()[0] == pytest.approx(0.01)
    layer = nn.Linear(3, 2)
    layer.weight.requires_grad = False   # frozen: a Linear's backward leaves its .grad alone
    layer.forward(np.ones((2, 3), np.float32))
    layer.backward(np.ones((2, 2), np.float32))
    assert not layer.weight.grad.any() and layer.bias.grad.any()
    assert nn.Linear(3, 2).forward(np.ones((4, 5, 3), np.float32)).shape == (4, 5, 2)
    params = [nn.Parameter(np.ones(3)), nn.Parameter(np.ones(2))]
    for q in params:
        q.grad[...] = 3.0
    assert float(nn.utils.clip_grad_norm_(params, 1.0)) == pytest.approx(np.sqrt(45))
    assert np.sqrt(sum((q.grad ** 2).sum() for q in params)) == pytest.approx(1.0, rel=1e-5)
    assert nn.ZeroPad2d(-1).forward(np.zeros((1, 1, 6, 6), np.float32)).shape == (1, 1, 4, 4)
    rrelu = nn.RReLU(0.1, 0.3).eval()   # the mean slope in eval mode
    assert rrelu.forward(np.array([-1.0], np.float32))[0] == pytest.approx(-0.2)


def test_batchnorm_momentum_none_is_the_cumulative_average():
    bn, twin = nn.BatchNorm1d(3, momentum=None), torch.nn.BatchNorm1d(3, momentum=None)
    for seed in range(3):
        x = np.random.default_rng(seed).standard_normal((4, 3)).astype(np.float32)
        bn.forward(x)
        twin(tt(x))
    np.testing.assert_allclose(bn.running_var, twin.running_var.numpy(), rtol=1e-6)
    np.testing.assert_allclose(bn.running_mean, twin.running_mean.numpy(), rtol=1e-6, atol=1e-7)
