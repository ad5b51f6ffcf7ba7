"""Non-finite and extreme values through the layers and losses, against PyTorch: the
NaN and infinity patterns of outputs and gradients, on every backend and dtype."""
import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn

BACKENDS = fastnn.backends()
DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64],
                                 ids=["float32", "float64"])


@DTYPES
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", [{}, dict(label_smoothing=0.1)], ids=["plain", "smooth"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_entropy_all_rows_ignored_keeps_nan_of_nonfinite_rows(backend, options,
                                                                    reduction, dtype):
    # every row ignored: PyTorch's gradient is still its log-softmax backward of a zero
    # gradient, NaN where the log-softmax is NaN (a NaN or +inf logit, a row of -inf)
    x = np.array([[-np.inf, -np.inf, -np.inf], [1, np.inf, 0], [np.nan, 0, 1],
                  [0, 1, 2], [1e30, -1e30, 0]], dtype)
    labels = np.zeros(5, np.int64)
    xt = torch.from_numpy(x).requires_grad_()
    want = torch.nn.functional.cross_entropy(xt, torch.from_numpy(labels), ignore_index=0,
                                             reduction=reduction, **options)
    want.backward(torch.ones_like(want))
    with fastnn.use_backend(backend):
        loss = nn.CrossEntropyLoss(ignore_index=0, reduction=reduction, **options)
        got = loss(x, labels)
        grad = loss.backward(None if reduction != "none" else np.ones(5))
    np.testing.assert_array_equal(np.asarray(got, dtype), want.detach().numpy())
    np.testing.assert_array_equal(grad, xt.grad.numpy())


@DTYPES
@pytest.mark.parametrize("n", [7, 40000])   # the serial and the parallel update
@pytest.mark.parametrize("backend", BACKENDS)
def test_rprop_steps_by_the_sign_of_subnormal_gradients(backend, n, dtype):
    # Rprop steps by signs: a subnormal gradient, or a subnormal g * prev, is a
    # direction in PyTorch; the compiled updates flushed them to 0 (no step)
    tiny = np.finfo(dtype).tiny
    rng = np.random.default_rng(0)
    grads = [np.where(rng.random(n) < 0.5, tiny / 4, -tiny / 4).astype(dtype),
             np.where(rng.random(n) < 0.5, tiny / 8, 1.0).astype(dtype),
             np.full(n, np.sqrt(tiny) / 4, dtype), np.full(n, np.sqrt(tiny) / 4, dtype)]
    param = nn.Parameter(np.ones(n, dtype))
    twin = torch.nn.Parameter(torch.ones(n, dtype=torch.from_numpy(param.data).dtype))
    with fastnn.use_backend(backend):
        ours = fastnn.optim.Rprop([param], lr=0.01)
        theirs = torch.optim.Rprop([twin], lr=0.01)
        for g in grads:
            param.grad, twin.grad = g.copy(), torch.from_numpy(g.copy())
            ours.step()
            theirs.step()
    np.testing.assert_array_equal(param.data, twin.detach().numpy())


_LOSS_OPTIONS = {"plain": {}, "ignore": dict(ignore_index=0),
                 "smooth": dict(label_smoothing=0.1),
                 "weight": dict(weight=np.ones(3, np.float32))}
# the options each loss takes (NLLLoss has no smoothing, MultiMarginLoss only a weight)
_LOSS_CASES = [(loss, name) for loss, names in
               [("CrossEntropyLoss", ["plain", "ignore", "smooth", "weight"]),
                ("NLLLoss", ["plain", "ignore", "weight"]),
                ("MultiMarginLoss", ["plain", "weight"])] for name in names]


@pytest.mark.parametrize("labels", [[0, 3], [0, -1], [-100, 5], [2 ** 40, 0]])
@pytest.mark.parametrize("loss,option_name", _LOSS_CASES,
                         ids=[f"{loss}-{name}" for loss, name in _LOSS_CASES])
def test_labels_past_the_class_boundary_raise_torchs_type(loss, option_name, labels):
    # PyTorch: IndexError ("Target 3 is out of bounds") for cross-entropy and NLL,
    # RuntimeError for MultiMarginLoss; fastnn's stays a ValueError too
    options = _LOSS_OPTIONS[option_name]
    x = np.zeros((2, 3), np.float32)
    target = np.array(labels, np.int64)
    theirs = getattr(torch.nn, loss)(**{k: torch.from_numpy(v) if isinstance(v, np.ndarray)
                                        else v for k, v in options.items()})
    with pytest.raises(Exception) as want:
        theirs(torch.from_numpy(x), torch.from_numpy(target))
    for backend in BACKENDS:
        with fastnn.use_backend(backend), pytest.raises(ValueError,
                                                        match="labels out of range") as got:
            getattr(nn, loss)(**options)(x, target)
        assert isinstance(got.value, type(want.value)), (got.value, want.value)


@DTYPES
@pytest.mark.parametrize("backend", BACKENDS)
def test_mish_gradient_far_below_zero_is_zero(backend, dtype):
    # finite inputs past -max / 4: the numba slope's 4 v overflowed to -inf, and
    # -inf * exp(v) = -inf * 0 made NaN where the slope is 0; -inf stays PyTorch's NaN
    big = np.finfo(dtype).max
    x = np.tile(np.array([-big, -big / 3, -big / 4.5, -1e30, -1e4, -100, -20, 0, 21,
                          -np.inf, np.nan], dtype), 5)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    torch.nn.functional.mish(xt).backward(torch.ones_like(xt))
    with fastnn.use_backend(backend):
        layer = nn.Mish()
        layer(x)
        grad = layer.backward(np.ones_like(x))
    want = xt.grad.numpy()
    np.testing.assert_array_equal(np.isnan(grad), np.isnan(want))
    np.testing.assert_allclose(grad[~np.isnan(want)], want[~np.isnan(want)], rtol=1e-5,
                               atol=1e-30)


@DTYPES
@pytest.mark.parametrize("n", [3, 64])   # the scalar tail and the vector loops
@pytest.mark.parametrize("backend", BACKENDS)
def test_silu_gradient_of_huge_negative_inputs_is_zero(backend, n, dtype):
    # sigmoid(x) = 0 there, so PyTorch's g s (1 + x (1 - s)) is 0; the Cython kernel's
    # reassociated product formed g x = inf first (times 0: NaN). -inf stays NaN
    big = np.finfo(dtype).max
    x = np.full(n, -big / 2, dtype)
    x[1] = -np.inf
    grad_out = np.full(n, -3.0, dtype)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    torch.nn.functional.silu(xt).backward(torch.from_numpy(grad_out))
    with fastnn.use_backend(backend):
        layer = nn.SiLU()
        layer(x)
        grad = layer.backward(grad_out)
    np.testing.assert_array_equal(grad, xt.grad.numpy())


@DTYPES
def test_glu_gradient_where_the_gate_saturates(dtype):
    # a huge a with a saturated gate (s (1 - s) = 0): PyTorch's a (1 - s) s g is 0, where
    # g a first overflowed to inf (times 0: NaN)
    big = np.finfo(dtype).max
    x = np.array([[big / 2, -big / 2, big / 2, 1.0, 1000.0, -1000.0, 0.0, 0.5]], dtype)
    grad_out = np.full((1, 4), 3.0, dtype)
    xt = torch.from_numpy(x.copy()).requires_grad_()
    torch.nn.functional.glu(xt).backward(torch.from_numpy(grad_out))
    layer = nn.GLU()
    layer(x)
    grad = layer.backward(grad_out)
    np.testing.assert_array_equal(np.isnan(grad), np.isnan(xt.grad.numpy()))
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-6)


@DTYPES
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("p", [1, 2])
def test_multi_margin_loss_skips_nan_margins_as_torch(p, reduction, dtype):
    # PyTorch's kernel adds max(0, z) only where z > 0: a NaN margin (a NaN score, or
    # inf - inf) adds nothing and has gradient 0; p = 2's 2 z near the float's max
    # stays finite as PyTorch's (2 g) z
    big = np.finfo(dtype).max
    x = np.array([[0.5, np.nan, 0.2], [np.inf, 1.0, np.inf], [np.nan, 0.0, 1.0],
                  [0.0, big / 1.5, 0.0], [0.1, -np.inf, 0.3]], dtype)
    labels = np.array([0, 0, 1, 0, 2])
    xt = torch.from_numpy(x.copy()).requires_grad_()
    want = torch.nn.functional.multi_margin_loss(xt, torch.from_numpy(labels), p=p,
                                                 reduction=reduction)
    want.backward(torch.ones_like(want))
    loss = nn.MultiMarginLoss(p=p, reduction=reduction)
    got = loss(x, labels)
    grad = loss.backward(None if reduction != "none" else np.ones(5, dtype))
    np.testing.assert_allclose(np.asarray(got, dtype), want.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-6)


@DTYPES
@pytest.mark.parametrize("layer", ["AvgPool2d", "AdaptiveAvgPool2d"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_average_pool_near_the_max_overflows_as_torch(backend, layer, dtype):
    # the window sum in the input's dtype, as PyTorch's (and numpy's, Cython's): the
    # numba kernel summed in float64 and gave the mean where the others give inf
    x = np.full((1, 2, 4, 4), np.finfo(dtype).max * 0.9, dtype)
    x[0, 1] = 1.5
    args = (2,) if layer == "AvgPool2d" else (1,)
    want = getattr(torch.nn, layer)(*args)(torch.from_numpy(x)).numpy()
    with fastnn.use_backend(backend), np.errstate(over="ignore"):
        got = getattr(nn, layer)(*args)(x)
    np.testing.assert_array_equal(got, want)


@DTYPES
@pytest.mark.parametrize("n", [1, 3, 8, 15, 17, 21])   # the Cython vector loop's tails
@pytest.mark.parametrize("backend", BACKENDS)
def test_mish_gradient_far_below_zero_every_length(backend, n, dtype):
    x = np.full(n, -0.9 * np.finfo(dtype).max, dtype)
    with fastnn.use_backend(backend), np.errstate(over="ignore", invalid="ignore"):
        layer = nn.Mish()
        layer(x)
        grad = layer.backward(np.ones_like(x))
    np.testing.assert_array_equal(grad, np.zeros(n, dtype))


@DTYPES
@pytest.mark.parametrize("cell", [False, True])
def test_relu_rnn_gradient_passes_through_nan_hidden_states(cell, dtype):
    # PyTorch's relu backward is a select on the output (0 where h <= 0, else the
    # gradient): a NaN hidden state passes its gradient, where dh * (h > 0) gave 0
    fastnn.manual_seed(0)
    ours = (nn.RNNCell(3, 4, nonlinearity="relu") if cell
            else nn.RNN(3, 4, nonlinearity="relu")).to(dtype)
    theirs = (torch.nn.RNNCell(3, 4, nonlinearity="relu") if cell
              else torch.nn.RNN(3, 4, nonlinearity="relu")).to(torch.from_numpy(
                  np.zeros(0, dtype)).dtype)
    theirs.load_state_dict({k: torch.from_numpy(np.array(v))
                            for k, v in ours.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((3, 2, 3) if not cell else (2, 3))
    x = x.astype(dtype)
    x[..., 0, 1] = np.nan
    xt = torch.from_numpy(x.copy()).requires_grad_()
    want = theirs(xt)
    want = want[0] if isinstance(want, tuple) else want
    g = np.random.default_rng(1).standard_normal(tuple(want.shape)).astype(dtype)
    want.backward(torch.from_numpy(g))
    got = ours(x)
    got = got[0] if isinstance(got, tuple) else got
    grad = ours.backward(g)
    grad = grad[0] if isinstance(grad, tuple) else grad
    np.testing.assert_array_equal(np.isnan(grad), np.isnan(xt.grad.numpy()))
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    twins = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        want_grad = twins[name].grad.numpy()
        np.testing.assert_array_equal(np.isnan(p.grad), np.isnan(want_grad))
        np.testing.assert_allclose(p.grad, want_grad, rtol=1e-5, atol=1e-6)
