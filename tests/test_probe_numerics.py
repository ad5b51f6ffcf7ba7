"""Values a numerical probe against PyTorch 2.13 found wrong on the compiled backends:
ELU's negative side near 0 (exp(x) - 1 lost every digit above -3e-8), CELU's positive
side (alpha * (x / alpha) is not x), a 0-d CELU gradient, and float64 sigmoid-family
kernels clamped at float32's exp range (numba). Every CPU backend, float32 and float64."""
import warnings

import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn, ops

BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]
DTYPES = [np.float32, np.float64]
NEAR_ZERO = [-1e-30, -1e-12, -1e-8, -3e-8, -1e-5, -1e-3, -0.1, -0.0]


def _relative(ours, theirs):
    theirs = theirs.detach().numpy()
    scale = np.maximum(np.abs(theirs.astype(np.float64)), np.finfo(theirs.dtype).tiny)
    return np.max(np.abs(ours.astype(np.float64) - theirs) / scale)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("make,tmake", [
    (lambda: nn.ELU(), lambda: torch.nn.ELU()),
    (lambda: nn.ELU(0.3), lambda: torch.nn.ELU(0.3)),
    (lambda: nn.SELU(), lambda: torch.nn.SELU()),
], ids=["elu", "elu0.3", "selu"])
def test_elu_family_keeps_relative_accuracy_near_zero(backend, dtype, make, tmake):
    x = np.array(NEAR_ZERO, dtype)
    with fastnn.use_backend(backend):
        y = make()(x)
    ulp = np.finfo(dtype).eps
    assert _relative(y, tmake()(torch.tensor(x))) <= 8 * ulp


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("alpha", [0.3, 2.5, 1e-30])
def test_celu_is_the_identity_above_zero(backend, dtype, alpha):
    """PyTorch keeps x where x > 0; alpha * (x / alpha) was an ulp off for about a fifth
    of float32 inputs at alpha 0.3, and inf where x / alpha overflows."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(4096) * 3, [3.0000002, 1e30, 3e38]]).astype(dtype)
    with fastnn.use_backend(backend), warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning for x / alpha either
        m = nn.CELU(alpha)
        y = m(x)
        g = m.backward(np.ones_like(y))
    positive = x > 0
    np.testing.assert_array_equal(y[positive], x[positive])
    np.testing.assert_array_equal(g[positive], np.ones_like(x[positive]))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("alpha", [-1.0, 0.5])
def test_celu_of_a_0d_input_keeps_its_shape(backend, alpha):
    x = np.array(-0.7)
    with fastnn.use_backend(backend):
        m = nn.CELU(alpha)
        y = m(x)
        g = m.backward(np.ones_like(y))
    t = torch.tensor(-0.7, dtype=torch.float64, requires_grad=True)
    torch.nn.CELU(alpha)(t).backward()
    assert y.shape == () and g.shape == ()
    np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-7)  # (torch: 1 / alpha in float32)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("op,top", [
    ("sigmoid", torch.sigmoid),
    ("silu", torch.nn.functional.silu),
    ("gelu_tanh", lambda t: torch.nn.functional.gelu(t, approximate="tanh")),
], ids=["sigmoid", "silu", "gelu_tanh"])
def test_float64_sigmoid_family_far_below_zero(backend, op, top):
    """float64 tails past float32's exp range (-88): numba clamped them there."""
    x = np.array([-100.0, -300.0, -700.0, -15.0, -2.0, 0.5, 40.0, 700.0])
    with fastnn.use_backend(backend), np.errstate(all="ignore"):
        y = getattr(ops, op)(x)
        g = getattr(ops, op + "_backward")(np.ones_like(x), x) if op != "sigmoid" else None
    tx = torch.tensor(x, requires_grad=True)
    ty = top(tx)
    ty.sum().backward()
    finite = ty.detach().numpy() != 0
    assert _relative(y[finite], ty[finite]) <= 1e-12
    if g is not None:
        nz = tx.grad.numpy() != 0
        assert _relative(g[nz], tx.grad[nz]) <= 1e-10


@pytest.mark.parametrize("backend", BACKENDS)
def test_memmaps_and_subclasses_bound_to_parameters(backend, tmp_path):
    """An ndarray subclass bound to .data or .grad (np.load's memmap, read-only or
    transposed, or a user's subclass) is taken as a plain C-contiguous array: the
    same gradients as plain arrays, and a read-only array is never written."""
    class Sub(np.ndarray):
        pass

    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 2, 7, 7))
    g = rng.standard_normal((4, 4, 3, 3))
    with fastnn.use_backend(backend):
        plain = nn.Conv2d(2, 4, 3, stride=2, groups=2).double()
        w = plain.weight.data.copy()
        plain(x)
        plain.backward(g)
        np.save(tmp_path / "wT.npy", np.ascontiguousarray(w.T))
        np.save(tmp_path / "g.npy", np.zeros_like(w))
        conv = nn.Conv2d(2, 4, 3, stride=2, groups=2).double()
        conv.bias.data = plain.bias.data.copy()
        conv.weight.data = np.load(tmp_path / "wT.npy", mmap_mode="r").T
        conv.weight.grad = np.load(tmp_path / "g.npy", mmap_mode="r")
        frozen = np.zeros_like(plain.bias.data).view(Sub)
        frozen.flags.writeable = False
        conv.bias.grad = frozen
        conv(x)
        conv.backward(g)
    np.testing.assert_array_equal(conv.weight.grad, plain.weight.grad)
    np.testing.assert_array_equal(conv.bias.grad, plain.bias.grad)
    assert not frozen.any() and not np.load(tmp_path / "g.npy").any()
    assert type(conv.weight.data) is np.ndarray and type(conv.bias.grad) is np.ndarray


def test_conv3d_takes_a_memmap_input_and_names_a_bad_dtype(tmp_path):
    x = np.random.default_rng(1).standard_normal((1, 2, 3, 3, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    conv = nn.Conv3d(2, 2, 2)
    np.testing.assert_array_equal(conv(np.load(tmp_path / "x.npy", mmap_mode="r")), conv(x))
    with pytest.raises(TypeError, match="float32 or float64"):
        conv(x.astype(np.float16))


@pytest.mark.parametrize("weight,ignore_index", [(np.zeros(4), -100), (np.zeros(4), 2),
                                                 (np.array([0.0, 1.0, 0.0, 1.0]), -100)])
def test_nll_loss_with_no_weight_counted_is_nan_at_the_labels_only(weight, ignore_index):
    """0 / 0 for the mean: PyTorch's NLL backward puts NaN at each kept row's label
    entry, 0 elsewhere (cross-entropy's softmax spreads it over the row)."""
    x = np.log(np.full((3, 4), 0.25))
    y = np.array([0, 2, 0]) if weight[1] else np.array([0, 2, 1])
    loss = nn.NLLLoss(weight=weight, ignore_index=ignore_index)
    value = loss(x, y)
    grad = loss.backward()
    xt = torch.tensor(x, requires_grad=True)
    tv = torch.nn.NLLLoss(weight=torch.tensor(weight), ignore_index=ignore_index)(
        xt, torch.tensor(y))
    tv.backward()
    np.testing.assert_array_equal(value, tv.item())
    np.testing.assert_array_equal(grad, xt.grad.numpy())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_gelu_tanh_keeps_relative_accuracy_far_below_zero(backend, dtype):
    """0.5 x (1 + tanh(u)) cancels far below 0 (the numpy backend was 13x off at
    x = -5.4 in float32); x sigmoid(2u) does not. Forward and backward against the
    same formula in float64 (long double for float64)."""
    x = np.linspace(-10, -0.5, 2000).astype(dtype)
    wide = x.astype(np.longdouble)
    u = np.sqrt(np.longdouble(2) / np.pi) * (wide + np.longdouble(0.044715) * wide ** 3)
    s = 1 / (1 + np.exp(-2 * u))
    y_ref = wide * s
    d_ref = s + 2 * wide * s * (1 - s) * np.sqrt(np.longdouble(2) / np.pi) * (
        1 + 3 * np.longdouble(0.044715) * wide ** 2)
    with fastnn.use_backend(backend):
        y = ops.gelu_tanh(x)
        d = ops.gelu_tanh_backward(np.ones_like(x), x)
    tol = 2e-4 if dtype == np.float32 else 1e-11
    assert np.max(np.abs((y - y_ref) / y_ref)) < tol
    assert np.max(np.abs((d - d_ref) / d_ref)) < tol


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_numpy_matrix_is_refused_by_name(backend):
    x = np.asmatrix(np.ones((2, 3), np.float32))
    with fastnn.use_backend(backend):
        with pytest.raises(TypeError, match="relu.*numpy.matrix"):
            ops.relu(x)
        with pytest.raises(TypeError, match="numpy.matrix"):
            nn.Linear(3, 2)(x)
