"""Pooling and normalisation layers against PyTorch, from a randomized probe (MaxPool,
AvgPool, LPPool, adaptive pools 1-D/2-D/3-D; BatchNorm, LayerNorm, GroupNorm,
InstanceNorm, LocalResponseNorm): the window maximum's NaN rule, windows wholly in the
padding, NaN and inf through adaptive average pooling, PyTorch's single-value errors of
GroupNorm and InstanceNorm, the batch counter of a PyTorch state dict, the pools' reprs,
and a seeded sweep of random configurations on every CPU backend in float32 and float64
(outputs, input and parameter gradients, running statistics after several training steps,
eval mode, state dict keys)."""
import warnings

import numpy as np
import pytest

import fastnn
from fastnn import nn, ops

import torch  # noqa: E402  (after fastnn, as the README asks)

from conftest import assert_close

CPU_BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]
DTYPES = [np.float32, np.float64]
TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def _tensor(a, grad=False):
    return torch.tensor(np.array(a), requires_grad=grad)


def _same(actual, expected, dtype, scale=10, what=""):
    """Equal to torch's within dtype's tolerance, NaN and inf in the same places."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, what
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg=what)
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(actual[~finite & ~np.isnan(expected)],
                                  expected[~finite & ~np.isnan(expected)], err_msg=what)
    assert_close(actual[finite], expected[finite], dtype, scale, err_msg=what)


def _twins(name, args, kwargs, dtype, rng):
    """(fastnn layer, torch layer) of one class, dtype, with the same random parameters."""
    twin = getattr(torch.nn, name)(*args, **kwargs).to(TORCH_DTYPES[np.dtype(dtype)])
    layer = getattr(nn, name)(*args, **kwargs)
    if np.dtype(dtype) == np.float64:
        layer = layer.double()
    for pname, p in twin.named_parameters():
        value = rng.standard_normal(tuple(p.shape)) * 0.5 + 1.0
        with torch.no_grad():
            p.copy_(_tensor(value))
        getattr(layer, pname).data[...] = value
    return layer, twin


def _compare(name, args, kwargs, inputs, seed=0, backends=CPU_BACKENDS):
    """Train steps on each input, then one eval step on the last: outputs (and indices),
    input and parameter gradients, buffers and the batch counter, state dict keys."""
    for backend in backends:
        for dtype in DTYPES:
            rng = np.random.default_rng(seed)
            what = f"{name}{args}{kwargs} {backend} {np.dtype(dtype).name}"
            with fastnn.use_backend(backend):
                layer, twin = _twins(name, args, kwargs, dtype, rng)
                assert list(layer.state_dict()) == list(twin.state_dict()), what
                for mode, x in [("train", x) for x in inputs] + [("eval", inputs[-1])]:
                    layer.train(mode == "train")
                    twin.train(mode == "train")
                    x = np.asarray(x, dtype)
                    xt = _tensor(x, grad=True)
                    yt, y = twin(xt), layer(x.copy())
                    if isinstance(yt, tuple):
                        (yt, it), (y, i) = yt, y
                        assert i.dtype == np.int64, what
                        np.testing.assert_array_equal(i, it.numpy(), err_msg=what)
                    assert y.dtype == dtype, what
                    _same(y, yt.detach().numpy(), dtype, what=what)
                    g = rng.standard_normal(tuple(yt.shape)).astype(dtype)
                    yt.backward(_tensor(g))
                    _same(layer.backward(g), xt.grad.numpy(), dtype, scale=20, what=what)
                    for pname, p in twin.named_parameters():
                        _same(getattr(layer, pname).grad, p.grad.numpy(), dtype, scale=20,
                              what=f"{what} {pname}.grad")
                    for bname, b in twin.named_buffers():
                        if bname == "num_batches_tracked":
                            assert layer.num_batches_tracked == int(b), what
                        else:
                            _same(getattr(layer, bname), b.numpy(), dtype,
                                  what=f"{what} {bname}")


# ------------------------------------------------------------- max pools: NaN windows
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_max_pools_take_the_last_nan_of_a_window_as_torch(backend):
    """PyTorch's kernels take every NaN they meet: the index is a window's last NaN (the
    reference backend and the adaptive pools' overlapping windows took the first)."""
    x = np.zeros((1, 2, 6, 6))
    x[0, 0, 0, 2] = x[0, 0, 1, 1] = np.nan          # two NaNs in one 3x3 window
    x[0, 1, 2, 0] = x[0, 1, 4, 5] = x[0, 1, 5, 5] = np.nan
    for name, args in [("MaxPool2d", (3,)), ("AdaptiveMaxPool2d", ((4, 3),)),
                       ("AdaptiveMaxPool2d", (2,))]:
        _compare(name, args, {"return_indices": True}, [x], backends=[backend])
    _compare("MaxPool1d", (4, 2), {"return_indices": True}, [x[:, :, 0] * x[:, :, 1]],
             backends=[backend])


@pytest.mark.parametrize("name, shape", [("MaxPool1d", (2, 2, 1)),
                                         ("MaxPool2d", (2, 2, 1, 1)),
                                         ("MaxPool3d", (2, 2, 1, 1, 1))])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_window_wholly_in_the_padding_has_torchs_index_and_no_gradient(name, shape,
                                                                         backend):
    """kernel 2, dilation 2, padding 1 over one input cell: every window's taps fall in
    the padding; PyTorch's index points past the plane (its own backward then writes out
    of bounds); fastnn's backward drops those windows (their -inf output moves with no
    input) instead of writing past its buffer."""
    x = np.arange(np.prod(shape), dtype=np.float64).reshape(shape)
    with fastnn.use_backend(backend):
        layer = getattr(nn, name)(2, padding=1, dilation=2, return_indices=True)
        y, indices = layer(x)
        _, it = getattr(torch.nn, name)(2, padding=1, dilation=2, return_indices=True)(
            _tensor(x))
        np.testing.assert_array_equal(indices, it.numpy())
        assert (indices >= 1).all() and np.isneginf(y).all()
        np.testing.assert_array_equal(layer.backward(np.ones_like(y)), np.zeros(shape))


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_max_pool2d_backward_skips_indices_outside_the_plane(backend):
    """ops.max_pool2d_backward writes only inside grad_in (the rows after it, part of the
    same allocation, keep their values)."""
    grad_out = np.ones((2, 3, 1, 2))
    indices = np.array([0, 4, -1, 3, 99, 2] * 2, np.int64).reshape(2, 3, 1, 2)
    block = np.full((3, 3, 2, 2), 7.0)
    with fastnn.use_backend(backend):
        got = ops.max_pool2d_backward(grad_out, indices, (2, 3, 2, 2), grad_in=block[:2])
    assert got is not None and np.array_equal(block[2], np.full((3, 2, 2), 7.0))
    expected = np.zeros((2, 3, 4))
    expected[:, 0, 0] = expected[:, 1, 3] = expected[:, 2, 2] = 1
    np.testing.assert_array_equal(block[:2].reshape(2, 3, 4), expected)


# ------------------------------------------------- adaptive average pools: NaN and inf
@pytest.mark.parametrize("name, out, shape", [
    ("AdaptiveAvgPool1d", 3, (2, 3, 8)), ("AdaptiveAvgPool2d", (4, 5), (2, 3, 8, 6)),
    ("AdaptiveAvgPool2d", (7, 3), (2, 3, 5, 4)),
    ("AdaptiveAvgPool3d", (3, 2, 4), (1, 2, 5, 3, 7))])
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_adaptive_average_keeps_nan_and_inf_in_their_windows(name, out, shape, backend):
    """Windows that do not tile the input were averaged by matrix products, which spread
    one NaN or inf over every output (0 * inf is NaN); PyTorch's touch only its windows.
    The same for NaN in the output's gradient, and no NumPy warnings."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape)
    flat = x.reshape(-1)
    flat[[1, 17, 30]] = [np.nan, np.inf, -np.inf]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _compare(name, (out,), {}, [x], backends=[backend])
        layer = getattr(nn, name)(out).double()
        xt = _tensor(rng.standard_normal(shape), grad=True)
        yt = getattr(torch.nn, name)(out)(xt)
        y = layer(xt.detach().numpy())
        g = rng.standard_normal(y.shape)
        g.reshape(-1)[[0, 5]] = [np.nan, np.inf]
        yt.backward(_tensor(g))
        _same(layer.backward(g), xt.grad.numpy(), np.float64)


def test_3d_pools_warn_nothing_on_nan_and_inf():
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 4, 4))
    x[0, 0, 0, 0, :2] = [np.inf, -np.inf]
    x[0, 1, 1, 1, 1] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for layer in (nn.AvgPool3d(2), nn.AdaptiveAvgPool3d(3), nn.MaxPool3d(2)):
            y = layer(x)
            layer.backward(np.ones_like(y))
    assert np.isnan(nn.AvgPool3d(2)(x)[0, 0, 0, 0, 0])


# -------------------------------------------------------------- single-value errors
@pytest.mark.parametrize("make, shape", [
    (lambda: nn.GroupNorm(2, 2), (1, 2)), (lambda: nn.GroupNorm(1, 1), (1, 1, 1)),
    (lambda: nn.GroupNorm(3, 3, affine=False), (1, 3, 1, 1))])
@pytest.mark.parametrize("training", [True, False])
def test_groupnorm_of_one_value_per_group_is_a_valueerror_as_torch(make, shape, training):
    layer = make().train(training)
    with pytest.raises(ValueError, match=r"GroupNorm\(.*expected more than 1 value"):
        layer(np.ones(shape, np.float32))
    twin = torch.nn.GroupNorm(*(layer.num_groups, layer.num_channels)).train(training)
    with pytest.raises(ValueError, match="Expected more than 1 value"):
        twin(torch.ones(shape))
    assert nn.GroupNorm(2, 4)(np.arange(4, dtype=np.float32).reshape(1, 4)).shape == (1, 4)


@pytest.mark.parametrize("name, shape", [("InstanceNorm1d", (2, 3, 1)),
                                         ("InstanceNorm1d", (3, 1)),
                                         ("InstanceNorm2d", (2, 3, 1, 1)),
                                         ("InstanceNorm3d", (3, 1, 1, 1))])
def test_instancenorm_of_one_position_is_a_valueerror_as_torch(name, shape):
    """With instance statistics (training, or no running statistics); eval mode with
    running statistics takes it, as PyTorch's."""
    x = np.ones(shape, np.float32)
    for kwargs, training in [({}, True), ({}, False), ({"track_running_stats": True}, True)]:
        layer = getattr(nn, name)(3, **kwargs).train(training)
        twin = getattr(torch.nn, name)(3, **kwargs).train(training)
        with pytest.raises(ValueError, match=r"expected more than 1 spatial element"):
            layer(x)
        with pytest.raises(ValueError, match="Expected more than 1 spatial element"):
            twin(torch.from_numpy(x))
        if layer.running_mean is not None:
            np.testing.assert_array_equal(layer.running_mean, np.zeros(3))
    layer = getattr(nn, name)(3, track_running_stats=True).eval()
    twin = getattr(torch.nn, name)(3, track_running_stats=True).eval()
    np.testing.assert_allclose(layer(x), twin(torch.from_numpy(x)).numpy())
    assert layer.num_batches_tracked == int(twin.num_batches_tracked) == 0


# ------------------------------------------------------------ the batch counter on load
@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_torch_state_dict_brings_its_batch_counter_for_momentum_none(backend):
    """momentum=None averages every batch (factor 1 / num_batches_tracked): a model
    loaded from PyTorch's state dict goes on from PyTorch's count, not from 0."""
    rng = np.random.default_rng(0)
    twin = torch.nn.Sequential(torch.nn.Linear(3, 4),
                               torch.nn.BatchNorm1d(4, momentum=None)).double()
    for _ in range(3):
        twin(_tensor(rng.standard_normal((5, 3))))
    state = {k: v.detach().numpy() for k, v in twin.state_dict().items()}
    with fastnn.use_backend(backend):
        model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, momentum=None)).double()
        with pytest.raises(ValueError, match="nothing was loaded.*integer count"):
            model.load_state_dict({**state, "1.num_batches_tracked": np.array(2.5)})
        assert model[1].num_batches_tracked == 0
        assert model.load_state_dict(state) == ([], [])
        assert model[1].num_batches_tracked == 3
        x = rng.standard_normal((6, 3))
        twin(_tensor(x))
        model(x)
    assert model[1].num_batches_tracked == 4
    assert_close(model[1].running_mean, twin[1].running_mean.numpy(), np.float64)
    assert_close(model[1].running_var, twin[1].running_var.numpy(), np.float64)


# ------------------------------------------------------------------------------ reprs
@pytest.mark.parametrize("text", [
    "MaxPool2d(2)", "MaxPool2d((2, 3), 1, (1, 0), ceil_mode=True)",
    "MaxPool1d(3, dilation=2, return_indices=True)", "MaxPool1d((3,), padding=1)",
    "AvgPool1d(3)", "AvgPool1d((3,), 2, 1)", "AvgPool2d(3, divisor_override=2)",
    "AvgPool2d((3, 2), None, 1, True, False)"])
def test_pool_reprs_are_torchs(text):
    assert repr(eval("nn." + text)) == repr(eval("torch.nn." + text))


# ------------------------------------------------------------------- a seeded sweep
def _random_pool(seed):
    """(class name, args, kwargs, input) of a random pooling configuration torch takes;
    the kind and dimension cycle with the seed (15 pairs)."""
    rng = np.random.default_rng(seed)
    d = seed // 5 % 3 + 1
    kind = ["Max", "Avg", "AdaptiveMax", "AdaptiveAvg", "LP"][seed % 5]
    batched = rng.random() < 0.75
    sizes = lambda lo, hi: tuple(int(v) for v in rng.integers(lo, hi + 1, d))  # noqa: E731
    kw = {}
    if kind in ("Max", "Avg"):
        k = sizes(1, 3)
        kw = dict(kernel_size=k, stride=None if rng.random() < 0.3 else sizes(1, 3),
                  padding=tuple(int(rng.integers(0, v // 2 + 1)) for v in k),
                  ceil_mode=bool(rng.random() < 0.4))
        if kind == "Max":
            kw.update(dilation=sizes(1, 2), return_indices=bool(rng.random() < 0.5))
        else:
            kw["count_include_pad"] = bool(rng.random() < 0.5)
            if d > 1 and rng.random() < 0.3:
                kw["divisor_override"] = int(rng.integers(1, 5))
        args, spatial = (), sizes(4, 7)
    elif kind.startswith("Adaptive"):
        out = (int(rng.integers(1, 8)) if d == 1  # (PyTorch's 1-D pools take no None)
               else tuple(None if rng.random() < 0.2 else int(v)
                          for v in rng.integers(1, 8, d)))
        args, spatial = (out,), sizes(1, 7)
        if kind == "AdaptiveMax":
            kw["return_indices"] = bool(rng.random() < 0.5)
    else:
        args = ([1, 2, 3, 1.5][int(rng.integers(0, 4))], int(rng.integers(1, 4)))
        kw = dict(stride=int(rng.integers(1, 3)), ceil_mode=bool(rng.random() < 0.4))
        spatial = sizes(3, 6)
    shape = ((int(rng.integers(1, 3)),) if batched else ()) + (int(rng.integers(1, 3)),)
    x = rng.standard_normal(shape + spatial)
    if kind == "LP":
        x = np.abs(x) + 0.5
    return f"{kind}Pool{d}d", args, kw, x


@pytest.mark.parametrize("seed", range(30))
def test_random_pools_as_torch(seed):
    name, args, kwargs, x = _random_pool(seed)
    _compare(name, args, kwargs, [x], seed)


_NORMS = [
    ("BatchNorm1d", (3,), {}, (4, 3)), ("BatchNorm1d", (3,), {"momentum": None}, (4, 3, 5)),
    ("BatchNorm1d", (2,), {"affine": False, "track_running_stats": False}, (3, 2, 2)),
    ("BatchNorm2d", (3,), {"momentum": None, "bias": False}, (2, 3, 2, 3)),
    ("BatchNorm2d", (2,), {"track_running_stats": False, "eps": 0.1}, (2, 2, 3, 1)),
    ("BatchNorm3d", (2,), {"momentum": 0.5, "affine": False}, (2, 2, 2, 1, 3)),
    ("LayerNorm", ((2, 3),), {}, (4, 2, 3)), ("LayerNorm", (5,), {"bias": False}, (2, 2, 5)),
    ("LayerNorm", ((3, 2),), {"elementwise_affine": False}, (3, 2)),
    ("GroupNorm", (2, 4), {}, (3, 4, 2)), ("GroupNorm", (3, 6), {"bias": False}, (2, 6, 2, 2)),
    ("GroupNorm", (1, 2), {"affine": False}, (2, 2)),
    ("InstanceNorm1d", (3,), {"affine": True}, (2, 3, 4)),
    ("InstanceNorm2d", (2,), {"track_running_stats": True}, (2, 2, 3, 2)),
    ("InstanceNorm2d", (2,), {"affine": True, "track_running_stats": True,
                              "momentum": None}, (2, 3, 3)),
    ("InstanceNorm3d", (2,), {"affine": True, "bias": False}, (2, 2, 2, 2)),
    ("LocalResponseNorm", (3,), {}, (2, 5, 3)),
    ("LocalResponseNorm", (4,), {"alpha": 0.5, "beta": 1.5, "k": 2.0}, (1, 6, 2, 2, 2))]


@pytest.mark.parametrize("name, args, kwargs, shape", _NORMS,
                         ids=[f"{n}-{i}" for i, (n, *_) in enumerate(_NORMS)])
def test_norms_as_torch_over_training_steps_and_eval(name, args, kwargs, shape):
    rng = np.random.default_rng(len(shape))
    _compare(name, args, kwargs, [rng.standard_normal(shape) * 2 + 1 for _ in range(3)])
