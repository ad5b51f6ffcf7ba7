"""Error contract probes: bad input raises ValueError/TypeError naming the op or layer and
leaves every parameter, gradient and running statistic as it was (also for a gradient a
user module returns inside a Sequential, and for max_pool2d_backward's grad_out)."""
import re
import warnings

import numpy as np
import pytest

from fastnn import nn, ops, optim


def _state(*modules):
    return [(p.data.copy(), p.grad.copy()) for m in modules for p in m.parameters()] + [
        b.copy() for m in modules for b in m.buffers()]


def _assert_same(before, after):
    assert len(before) == len(after)
    for a, b in zip(before, after):
        for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
            np.testing.assert_array_equal(x, y)


class _DropsAColumn(nn.Module):
    """A user module whose backward returns a gradient one column short."""

    def forward(self, x):
        return x.copy()

    def backward(self, grad_out):
        return grad_out[:, :-1].copy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bad_gradient_from_a_user_module_is_named_and_taken_back(backend, dtype):
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), _DropsAColumn(), nn.Linear(5, 3))
    model = model.double() if dtype == np.float64 else model
    x = np.random.default_rng(0).standard_normal((6, 4)).astype(dtype)
    y = model(x)
    before = _state(model)
    with pytest.raises(ValueError, match=r"Sequential layer 2: the gradient the backward of "
                                         r".* returned does not fit the output of layer 0: "
                                         r"Linear\(.*\): expected grad_out of "
                                         r"shape \(6, 5\).*got \(6, 4\)"):
        model.backward(np.ones_like(y))
    _assert_same(before, _state(model))  # layer 3's gradient was put back


def test_max_pool_backward_checks_batch_and_channels(backend):
    x = np.random.default_rng(1).standard_normal((2, 3, 6, 6)).astype(np.float32)
    y, idx = ops.max_pool2d_forward(x, (2, 2), (2, 2))
    for shape in [(1, 3, 6, 6), (2, 2, 6, 6), (4, 3, 6, 6)]:
        with pytest.raises(ValueError, match=r"max_pool2d_backward: expected grad_out of shape "
                                             rf"\({shape[0]}, {shape[1]}, H_out, W_out\)"):
            ops.max_pool2d_backward(np.ones_like(y), idx, shape)
    assert ops.max_pool2d_backward(np.ones_like(y), idx, x.shape).sum() == y.size


def _layers(rng):
    c, f = int(rng.integers(2, 5)), int(rng.integers(2, 6))
    return [(nn.Linear(f, 3), (4, f), [(4, f + 1), (2, 4, f + 1), ()]),
            (nn.BatchNorm1d(c), (4, c), [(4, c + 1), (1, c), (4, c, 2, 2)]),
            (nn.BatchNorm2d(c), (3, c, 4, 4), [(3, c + 1, 4, 4), (1, c, 1, 1), (3, c)]),
            (nn.Conv2d(c, 2, 3), (2, c, 5, 5), [(2, c + 1, 5, 5), (2, c, 2, 2), (2, c)]),
            (nn.MaxPool2d(3), (2, c, 6, 6), [(2, c, 2, 6), (2, c)]),
            (nn.AvgPool2d(3, 2), (2, c, 6, 6), [(2, c, 6, 1), (2, c, 6, 6, 1)]),
            (nn.Flatten(), (2, c, 3), [(2,)]), (nn.Dropout(0.3), (4, c), []),
            (nn.GELU(), (4, c), [])]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_bad_inputs_change_nothing(backend, dtype):
    """A small randomized campaign: bad dtype, shape and grad_out for each layer, training
    and eval, after a forward and backward that filled gradients and statistics."""
    rng = np.random.default_rng(7)
    other = np.float64 if dtype == np.float32 else np.float32
    for layer, good, bad_shapes in _layers(rng):
        layer = layer.double() if dtype == np.float64 else layer
        x = rng.standard_normal(good).astype(dtype)
        y = layer(x)
        layer.backward(rng.standard_normal(y.shape).astype(dtype))
        y = layer(x)
        name = type(layer).__name__
        bads = [np.zeros(good, t) for t in (np.int64, np.float16, np.bool_, np.complex64)]
        bads += [rng.standard_normal(s).astype(dtype) for s in bad_shapes]
        if list(layer.parameters()):
            bads.append(x.astype(other))
        before = _state(layer)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            for xb in bads:
                with pytest.raises((ValueError, TypeError), match=name):
                    layer(xb)
            for gb in (np.ones(y.shape + (1,), dtype), np.ones(y.shape, other),
                       np.ones(y.shape, np.int64),
                       np.ones(y.shape[:-1] + (y.shape[-1] + 1,), dtype)):
                with pytest.raises((ValueError, TypeError), match=name):
                    layer.backward(gb)
        _assert_same(before, _state(layer))
        layer.backward(np.ones_like(y))  # the saved forward state is still usable


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps, lr=0.01)], ids=["sgd", "adam"])
def test_optimizer_with_a_bad_grad_moves_no_parameter(backend, make):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    y = model(np.random.default_rng(2).standard_normal((5, 3)).astype(np.float32))
    model.backward(np.ones_like(y))
    params = list(model.parameters())
    opt = make(params)
    opt.step()
    last = params[-1]
    for bad in (np.ones(last.shape + (1,), np.float32), np.ones(last.shape, np.float64),
                np.ones(last.shape, np.int64), np.ones((1,), np.float32)):
        keep = last.grad
        before = _state(model) + [np.array(v, copy=True) for s in opt.state.values()
                                  for v in s.values() if isinstance(v, np.ndarray)]
        with pytest.raises((ValueError, TypeError)):   # refused where it is assigned,
            last.grad = bad                             # as PyTorch refuses it
        assert last.grad is keep
        opt.step()   # (the good gradients)
        after = _state(model) + [np.array(v, copy=True) for s in opt.state.values()
                                 for v in s.values() if isinstance(v, np.ndarray)]
        assert any(not np.array_equal(a, b) for a, b in zip(before, after))


def test_functional_bce_checks_pred_and_target_as_the_layer(backend):
    """ops.bce_loss refuses pred or target outside [0, 1] (also next to a NaN), with
    nn.BCELoss's message; NaN alone passes into a NaN loss, as in the layer."""
    f32 = np.float32
    with pytest.raises(ValueError, match=r"bce_loss: expected pred to be probabilities in "
                                         r"\[0, 1\], got values in \[0.5, 2.0\]"):
        ops.bce_loss(np.array([np.nan, 0.5, 2.0], f32), np.zeros(3, f32))
    with pytest.raises(ValueError, match=r"bce_loss: expected target to be probabilities"):
        ops.bce_loss(np.full(2, 0.5, f32), np.array([0.0, -1.0], f32))
    loss, grad = ops.bce_loss(np.array([np.nan, 0.5], f32), np.array([1.0, 0.0], f32))
    assert np.isnan(loss) and np.isnan(grad[0]) and np.isfinite(grad[1])


@pytest.mark.parametrize("kernel", [(0, 0), (0, 2), (2, 0)])
def test_functional_conv_refuses_an_empty_kernel(backend, kernel):
    """A 0-sized kernel (PyTorch: "kernel size should be greater than zero") had given an
    output one pixel larger than the input, filled with the bias."""
    x = np.ones((1, 1, 3, 3), np.float32)
    w = np.ones((1, 1) + kernel, np.float32)
    with pytest.raises(ValueError, match="conv2d_forward: expected a kernel size >= 1, got 0"):
        ops.conv2d_forward(x, w, np.ones(1, np.float32))
    with pytest.raises(ValueError, match="conv2d_backward: expected a kernel size >= 1, got 0"):
        ops.conv2d_backward(np.ones((1, 1, 4, 4), np.float32), x, w)


def test_masked_arrays_are_refused_by_name(backend):
    """A masked array would reach the kernels with its masked values read (compiled
    backends) or fail inside NumPy's ma module (numpy backend): refused up front."""
    x = np.ma.masked_array(np.ones((2, 3), np.float32), mask=[[0, 1, 0], [0, 0, 0]])
    with pytest.raises(TypeError, match="Linear.*expected input to be a plain numpy.ndarray, got "
                                        "a masked array"):
        nn.Linear(3, 2)(x)
    with pytest.raises(TypeError, match="linear_forward: expected x to be a plain"):
        ops.linear_forward(x, np.ones((2, 3), np.float32))
    np.testing.assert_array_equal(nn.ReLU()(x.filled(0)), [[1, 0, 1], [1, 1, 1]])


# ------------------------------------------- functional: ValueError and PyTorch's type
def _functional_case(name, *args, **kwargs):
    return pytest.param(name, args, kwargs, id=f"{name}-{len(_FUNCTIONAL_CASES)}")


_FUNCTIONAL_CASES = []
_R = np.random.default_rng(7)
_X3, _X4, _X5 = (_R.standard_normal(s).astype("f4")
                  for s in ((2, 3, 8), (2, 4, 6, 6), (1, 2, 4, 4, 4)))
_POOLED = {2: (np.ones((2, 4, 3, 3), "f4"), np.arange(36).reshape(1, 1, 1, 36)),
           1: (np.ones((2, 3, 4), "f4"), np.arange(0, 8, 2)[None, None].repeat(3, 1))}
_CTC = (np.log(np.full((6, 2, 4), 0.25, "f4")), np.array([[1, 2, 3], [1, 1, 2]]),
        np.array([6, 6]), np.array([3, 2]))
for _case in [
        # a layer's TypeValueError for a float or str size stays PyTorch's TypeError
        ("local_response_norm", _X4, 2.5), ("local_response_norm", _X4, "a"),
        ("max_unpool1d", np.ones((2, 3, 4), "f4"), np.zeros((2, 3, 4), np.int64), 2.0),
        ("max_unpool2d", np.ones((2, 4, 3, 3), "f4"), np.zeros((2, 4, 3, 3), np.int64), 2.5),
        ("max_unpool3d", np.ones((1, 2, 2, 2, 2), "f4"), np.zeros((1, 2, 2, 2, 2), np.int64),
         2.0),
        ("pixel_shuffle", _X4, 2.0), ("pixel_unshuffle", _X4, 1.5), ("unfold", _X4, 2.5),
        ("max_pool3d", _X5, 2.5), ("avg_pool3d", _X5, 2.0), ("lp_pool2d", _X4, 2, 1.5),
        ("adaptive_max_pool2d", _X4, 2.5), ("adaptive_avg_pool3d", _X5, (2.0, 2, 2)),
        # embedding_bag's padding_idx as F.embedding_bag checks it (not nn.EmbeddingBag's
        # assertion): a TypeError when not an int, a RuntimeError out of range
        ("embedding_bag", np.array([1, 2, 3]), np.ones((10, 3), "f4"), np.array([0]),
         {"padding_idx": 1.5}),
        ("embedding_bag", np.array([1, 2, 3]), np.ones((10, 3), "f4"), np.array([0]),
         {"padding_idx": True}),
        ("embedding_bag", np.array([1, 2, 3]), np.ones((10, 3), "f4"), np.array([0]),
         {"padding_idx": 10}),
        ("embedding_bag", np.array([1, 2, 3]), np.ones((10, 3), "f4"), np.array([0]),
         {"padding_idx": -11}),
        # a layer's shape error at forward: RuntimeError and ValueError (was RuntimeError)
        ("adaptive_avg_pool1d", np.ones((2, 3, 4, 4), "f4"), 2),
        ("adaptive_max_pool3d", np.zeros((2, 3, 0, 2, 2), "f4"), 2),
        ("max_pool3d", _X5, 9), ("avg_pool3d", _X5, 9), ("lp_pool1d", _X3, 2, 9),
        ("pixel_shuffle", _X4, 3), ("unfold", _X4, 7),
        ("fold", np.ones((2, 5, 9), "f4"), (4, 4), 2),
        ("fractional_max_pool2d", _X4, 2, {"output_size": 9}),
        ("channel_shuffle", _X4, 3),
        # values the layers refuse: RuntimeError and ValueError, unchanged
        ("local_response_norm", _X4, 0), ("softshrink", _X3, float("inf")),
        ("cosine_similarity", _X3, _X3, {"eps": -1.0}),
        ("max_unpool2d", *_POOLED[2], 2), ("max_unpool1d", *_POOLED[1], 2, {"stride": 0}),
        ("max_unpool2d", np.ones((2, 4, 3, 3), "f4"), np.zeros((2, 4, 3, 3), np.int64), -2),
        ("scaled_dot_product_attention", _X3, _X3, _X3, {"dropout_p": 1.5}),
        ("ctc_loss", *_CTC, {"blank": 4}), ("ctc_loss", *_CTC[:2], np.array([7, 6]), _CTC[3]),
        ("pad", _X3, (1, 1), "constant", 1e40),
        ("multi_margin_loss", _X4[0, 0], np.array([0, 1, 9, 2, 0, 1]), {"p": 3}),
        ("multilabel_margin_loss", _X4[0, 0], np.full((6, 6), 7)),
        ("margin_ranking_loss", _X3[0, 0], _X3[0, 0, :3], np.ones(8, "f4")),
        # F's own checks in those functions: ValueErrors too (were bare RuntimeErrors)
        ("pad", _X3, (1,)), ("pad", _X3, (8, 8), "reflect"), ("pad", _X3, (9, 9), "circular"),
        ("pad", _X3, (1, 1, 1, 1, 1, 1, 1, 1), "replicate"), ("pad", _X3, (1, 1), "reflect", 2.0),
        ("poisson_nll_loss", _X3, _X3[:, :2]), ("soft_margin_loss", _X3, _X3[:1, :2]),
        ("multilabel_soft_margin_loss", np.array(0.5, "f4"), np.array(1.0, "f4")),
        ("multi_margin_loss", _X4, np.zeros(2, np.int64)),
        ("linear_cross_entropy", _X3[0], _X3[0, :2], np.array([0, 5, 1])),
        ("linear_cross_entropy", _X3[0], _X3[0, :2, :7], np.array([0, 1, 1])),
        ("max_pool3d", _X3, 2), ("cosine_similarity", _X3, _X3[:, :2]),
        ("cosine_similarity", _X3, _X3, {"dim": 3}), ("pixel_shuffle", _X4, 2.5)]:
    _kwargs = _case[-1] if isinstance(_case[-1], dict) else {}
    _args = _case[1:-1] if _kwargs or isinstance(_case[-1], dict) else _case[1:]
    _FUNCTIONAL_CASES.append(_functional_case(_case[0], *_args, **_kwargs))


@pytest.mark.parametrize("name, args, kwargs", _FUNCTIONAL_CASES)
def test_functional_errors_are_value_errors_of_pytorchs_type(name, args, kwargs):
    """F's functions adapted from layers and loss classes turn the layers' ValueErrors
    into PyTorch's RuntimeError (still ValueErrors); an error that already carries
    PyTorch's type (TypeValueError for a float size, ...) keeps it, and a layer's shape
    error at forward is a ValueError too (it was a bare RuntimeError)."""
    torch = pytest.importorskip("torch")
    from fastnn.nn import functional as F

    def tensor(a):
        return torch.from_numpy(a.copy()) if isinstance(a, np.ndarray) else a

    with pytest.raises(Exception) as theirs:
        getattr(torch.nn.functional, name)(*map(tensor, args), **kwargs)
    kind = next(t for t in type(theirs.value).__mro__
                if t in (RuntimeError, IndexError, TypeError, ValueError, AssertionError))
    with pytest.raises(ValueError) as ours:
        getattr(F, name)(*args, **kwargs)
    assert isinstance(ours.value, kind), (type(ours.value), type(theirs.value), ours.value)


@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 2, 2)])
@pytest.mark.parametrize("mean_only", [False, True])
def test_eval_batchnorm_reads_read_only_running_statistics(backend, shape, mean_only):
    """Eval mode only reads running_mean/running_var: read-only (or strided) ones give
    the result writeable ones give (they were refused as if written); training, which
    updates them in place, still refuses them by name."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(np.float32)
    w, b = (None if mean_only else rng.random(3, np.float32) + 0.5), rng.random(3, np.float32)
    stats = rng.random((2, 6), np.float32) + 0.5
    want = ops.batchnorm_forward(x, w, b, stats[0, ::2].copy(), stats[1, ::2].copy(),
                                 training=False, mean_only=mean_only)
    frozen = stats.copy()
    frozen.flags.writeable = False
    for rm, rv in [(frozen[0, ::2].copy(), frozen[1, ::2].copy()),   # read-only, contiguous
                   (frozen[0, ::2], frozen[1, ::2])]:                # read-only, strided
        rm.flags.writeable = rv.flags.writeable = False
        got = ops.batchnorm_forward(x, w, b, rm, rv, training=False, mean_only=mean_only)
        for a, e in zip(got, want):
            np.testing.assert_array_equal(a, e)
        with pytest.raises(ValueError, match="batchnorm_forward: expected running_mean to be "
                                             "(writeable|C-contiguous)"):
            ops.batchnorm_forward(x, w, b, rm, rv, training=True, mean_only=mean_only)
    np.testing.assert_array_equal(frozen, stats)


_F32_MAX = float(np.finfo(np.float32).max)


@pytest.mark.parametrize("where", ["F.pad", "ConstantPad1d", "pad_sequence"])
@pytest.mark.parametrize("dtype, value", [
    (np.float32, 1e40), (np.float32, -1e300), (np.float32, np.nextafter(_F32_MAX, np.inf)),
    (np.float32, 3.4028235e38), (np.float32, -_F32_MAX), (np.float32, 2 ** 70),
    (np.float32, float("-inf")), (np.float32, float("nan")), (np.float64, 1e300),
    (np.float64, 2 ** 70), (np.float32, "a"), (np.float64, 1j), (np.float32, True)])
def test_fill_value_that_overflows_is_checked_alike_and_as_pytorch(where, dtype, value):
    """F.pad's and the constant padding layers' value and pad_sequence's padding_value go
    through one check, PyTorch's: a finite value beyond float32's largest before rounding
    (3.4028235e38) is its RuntimeError (F.pad and the layers let it round to the largest),
    an int beyond int64 that a float holds (2**70) pads (they raised NumPy's TypeError),
    the layers' overflow is a RuntimeError too (was a bare ValueError), and a non-number
    is a TypeError that is also a ValueError; True pads with 1 (the layers refused it)."""
    torch = pytest.importorskip("torch")
    from fastnn.nn import functional as F
    from fastnn.nn.utils import rnn
    x = np.arange(6).reshape(2, 3).astype(dtype)
    calls = {"F.pad": (lambda t, v: torch.nn.functional.pad(t, (1, 1), value=v),
                       lambda a, v: F.pad(a, (1, 1), value=v)),
             "ConstantPad1d": (lambda t, v: torch.nn.ConstantPad1d(1, v)(t),
                               lambda a, v: nn.ConstantPad1d(1, v)(a)),
             "pad_sequence": (lambda t, v: torch.nn.utils.rnn.pad_sequence(
                                  [t[0], t[1, :2]], padding_value=v),
                              lambda a, v: rnn.pad_sequence([a[0], a[1, :2]],
                                                            padding_value=v))}
    theirs, ours = calls[where]
    try:
        want = theirs(torch.from_numpy(x), value).numpy()
    except (RuntimeError, TypeError) as error:
        with pytest.raises(ValueError) as got:
            ours(x, value)
        assert isinstance(got.value, type(error)), (got.value, error)
        return
    np.testing.assert_array_equal(ours(x, value), want)


def test_a_students_module_mistakes_are_named():
    """What the custom-module audit found pointing away from the mistake."""
    from fastnn.nn import functional as F
    _warnings = warnings
    # a subclass of a built-in layer with forward only: its gradients are the built-in's
    with pytest.warns(UserWarning, match="Scaled defines forward but not backward: the "
                                         "backward it inherits is Linear's"):
        class Scaled(nn.Linear):
            def forward(self, x):
                return super().forward(x) * 2.0
    with _warnings.catch_warnings():
        _warnings.simplefilter("error")

        class Both(nn.Linear):       # forward and backward: no warning
            def forward(self, x):
                return super().forward(x) * 2.0

            def backward(self, grad_out):
                return super().backward(grad_out * 2.0)
    with pytest.warns(UserWarning, match="inherits is ReLU's"):
        class Counting(nn.ReLU):
            def forward(self, x):
                return super().forward(x)

    # ... whose forward never ran the built-in one
    with pytest.warns(UserWarning):
        class Standardised(nn.Linear):
            def forward(self, x):
                return F.linear(x, self.weight.data - self.weight.data.mean())
    layer = Standardised(3, 2)
    layer(np.ones((4, 3), np.float32))
    with pytest.raises(RuntimeError, match="Standardised.forward did not run the built-in "
                                           "forward whose backward it inherits"):
        layer.backward(np.ones((4, 2), np.float32))
    # a backward that forgot to return, inside a Sequential: it is named
    class NoReturn(nn.Module):
        def forward(self, x):
            return x * 1.0

        def backward(self, grad_out):
            grad_out * 1.0

    model = nn.Sequential(nn.Linear(3, 3), NoReturn(), nn.Linear(3, 2))
    model(np.ones((4, 3), np.float32))
    with pytest.raises(TypeError, match="Sequential layer 1: the gradient the backward of "
                                        "NoReturn returned does not fit the output of layer 0"):
        model.backward(np.ones((4, 2), np.float32))
    # MyTorch's layer.weight = array
    with pytest.raises(TypeError, match=r"assign the array to weight.data, or wrap it"):
        nn.Linear(3, 2).weight = np.zeros((2, 3), np.float32)

    # no super().__init__()
    class Scale(nn.Module):
        def __init__(self, k):
            self.k = k

        def forward(self, x):
            return x * self.k

    with pytest.raises(AttributeError, match=r"did not call super\(\).__init__\(\)"):
        Scale(2)(np.ones(3, np.float32))
    assert not hasattr(nn.Linear(2, 2), "no_such_attribute")


@pytest.mark.parametrize("name", [
    "relu6", "selu", "selu_", "logsigmoid", "relu", "relu_", "leaky_relu", "leaky_relu_",
    "elu", "elu_", "gelu", "silu", "mish", "sigmoid", "tanh", "softplus", "softsign",
    "hardtanh", "hardtanh_", "hardsigmoid", "hardswish"])
@pytest.mark.parametrize("bad", [np.ones((2, 3), np.int32), [1.0, 2.0], np.float32(1.0)],
                         ids=["int32", "list", "numpy-scalar"])
def test_functional_activation_errors_name_the_function_called(name, bad):
    """F.relu6, F.selu and F.logsigmoid run another op's kernel (hardtanh, elu,
    softplus), whose name their errors gave: 'hardtanh: expected x of dtype float32 or
    float64' for F.relu6 of an int array, a function the user never called. The others
    run the fastnn.ops function of their name, whose parameter is x: their errors named x
    ('relu: expected x of dtype ... (x.astype(np.float32) converts it)') where the
    function's parameter, as PyTorch's, is input."""
    from fastnn.nn import functional as F
    with pytest.raises(TypeError, match=rf"^{name.rstrip('_')}: expected input ") as info:
        getattr(F, name)(bad)
    assert not re.search(r"\bx\b", str(info.value)), str(info.value)


def test_functional_gelu_tanh_error_names_gelu_and_input():
    from fastnn.nn import functional as F
    with pytest.raises(TypeError, match=r"^gelu: expected input of dtype .*"
                                        r"\(input\.astype\(np\.float32\) converts it\)"):
        F.gelu(np.ones(3, np.int32), approximate="tanh")


_IN_PLACE_CALLS = {
    "relu_": lambda F, x: F.relu_(x), "relu": lambda F, x: F.relu(x, inplace=True),
    "relu6": lambda F, x: F.relu6(x, inplace=True), "selu_": lambda F, x: F.selu_(x),
    "celu": lambda F, x: F.celu(x, -1.0, inplace=True), "elu_": lambda F, x: F.elu_(x),
    "elu": lambda F, x: F.elu(x, float("inf"), inplace=True),
    "leaky_relu": lambda F, x: F.leaky_relu(x, float("nan"), inplace=True),
    "hardtanh_": lambda F, x: F.hardtanh_(x, 1.0, -1.0),
    "threshold_": lambda F, x: F.threshold_(x, 0.5, 0.0),
    "rrelu_": lambda F, x: F.rrelu_(x, training=True),
    "dropout": lambda F, x: F.dropout(x, 0.5, inplace=True),
    "dropout2d": lambda F, x: F.dropout2d(x[None, None], 0.5, inplace=True),
    "alpha_dropout": lambda F, x: F.alpha_dropout(x, 0.5, True, inplace=True),
}


@pytest.mark.parametrize("name", sorted(_IN_PLACE_CALLS))
def test_functional_in_place_on_a_read_only_array_names_the_function(name):
    """inplace=True (or F.relu_ and the like) on a read-only array: a ValueError naming
    the function, where NumPy's 'assignment destination is read-only' named none (and
    came after the work); the array is left as it was."""
    from fastnn.nn import functional as F
    x = np.linspace(-2, 2, 12, dtype=np.float32).reshape(3, 4)[:, ::2]   # (strided)
    x.flags.writeable = False
    before = x.copy()
    stem = name.rstrip("_")
    with pytest.raises(ValueError, match=rf"^{stem}: inplace=True .* read-only"):
        _IN_PLACE_CALLS[name](F, x)
    np.testing.assert_array_equal(x, before)
