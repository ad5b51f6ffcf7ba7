"""Course-homework ports (MyTorch style): reference weights assigned to the layers'
``.data``, explicit forward/backward, float64 autograders with tight tolerances.

Pinned defects:
- a float64 array assigned to a float32 layer's ``weight.data`` / ``bias.data`` left the
  ``.grad`` float32: numpy/numba accumulated the float64 gradient into it (silently
  rounded to float32), cython raised "Buffer dtype mismatch", and an optimizer refused
  the parameter (PyTorch's grad is None until a backward makes it in the data's dtype);
- arrays of the wrong shape or mixed dtypes assigned to a Linear's or BatchNorm's
  parameters or buffers reached the kernels: cython computed a (2, 4) output from a
  transposed (in, out) weight of a Linear(4, 3) and read past a short running_mean,
  numba ran a short bias or BatchNorm weight, numpy/numba mixed float32 and float64;
  now a ValueError / TypeError naming the layer, before anything is written;
- float class labels (N,) given to CrossEntropyLoss were refused as "expected target
  of shape (N, C) (same as pred)"; now a TypeError saying labels need an integer dtype.
"""
import numpy as np
import pytest

import fastnn
from fastnn import nn, optim
from fastnn.models import MLP

torch = pytest.importorskip("torch")

BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]


@pytest.fixture(params=BACKENDS)
def backend(request):
    with fastnn.use_backend(request.param):
        yield request.param


def _torch_mlp(hidden, n_in=32, n_out=10):
    layers, width = [], n_in
    for h in hidden:
        layers += [torch.nn.Linear(width, h), torch.nn.ReLU()]
        width = h
    layers.append(torch.nn.Linear(width, n_out))
    return torch.nn.Sequential(*layers).double()


@pytest.mark.parametrize("hidden", [[], [16], [16, 16, 16, 16]], ids=["mlp0", "mlp1", "mlp4"])
def test_float64_reference_weights_assigned_to_a_float32_mlp_train_in_float64(backend,
                                                                               hidden):
    """The autograder pattern: a default (float32) model, float64 reference weights put
    into .data, float64 batches, SGD steps: gradients and weights stay float64 and
    follow torch to rounding (before: float32 gradients, or a cython/optimizer error)."""
    rng = np.random.default_rng(0)
    model = MLP(32, hidden, 10)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3,
                    nesterov=True)
    ref = _torch_mlp(hidden)
    ref_opt = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3,
                              nesterov=True)
    for p, q in zip(model.parameters(), ref.parameters()):
        p.data = q.detach().numpy().copy()
    loss_fn = nn.CrossEntropyLoss()
    for step in range(3):
        x, y = rng.random((8, 32)), rng.integers(0, 10, 8).astype(np.int32)
        opt.zero_grad()
        ref_opt.zero_grad()
        loss = loss_fn(model(x), y)
        dx = model.backward(loss_fn.backward())
        xt = torch.tensor(x, requires_grad=True)
        ref_loss = torch.nn.functional.cross_entropy(ref(xt), torch.tensor(y).long())
        ref_loss.backward()
        assert loss == pytest.approx(ref_loss.item(), rel=1e-12)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-15)
        for p, q in zip(model.parameters(), ref.parameters()):
            assert p.grad.dtype == np.float64
            np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-10, atol=1e-15)
        opt.step()
        ref_opt.step()
        for p, q in zip(model.parameters(), ref.parameters()):
            assert p.data.dtype == np.float64
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=1e-10, atol=1e-15)


def test_assigned_data_keeps_the_accumulated_gradient_cast(backend):
    lin = nn.Linear(4, 3)
    lin(np.ones((2, 4), np.float32))
    lin.backward(np.ones((2, 3), np.float32))
    before = lin.weight.grad.copy()
    lin.weight.data = lin.weight.data.astype(np.float64)
    assert lin.weight.grad.dtype == np.float64
    np.testing.assert_array_equal(lin.weight.grad, before)
    lin.bias.data = np.zeros(5)  # another shape: a fresh zero gradient of that shape
    assert lin.bias.grad.shape == (5,) and not lin.bias.grad.any()


def _same_state(module, state):
    now = module.state_dict()
    assert list(now) == list(state)
    for k in state:
        np.testing.assert_array_equal(now[k], state[k])


@pytest.mark.parametrize("where", ["standalone", "sequential"])
def test_linear_refuses_rebound_weights_of_another_shape_or_dtype(backend, where):
    x = np.ones((2, 4), np.float32)

    def run(layer):
        return layer(x) if where == "standalone" else nn.Sequential(layer, nn.ReLU())(x)

    lin = nn.Linear(4, 3)
    lin.weight.data = np.ones((4, 3), np.float32)  # an (in, out) course-style weight
    with pytest.raises(ValueError, match=r"Linear\(in_features=4, out_features=3.*expected "
                                         r"weight of shape \(3, 4\), got \(4, 3\)"):
        run(lin)
    lin = nn.Linear(4, 3)
    lin.bias.data = np.ones(5, np.float32)
    with pytest.raises(ValueError, match=r"expected bias of shape \(3,\), got \(5,\)"):
        run(lin)
    lin = nn.Linear(4, 3)
    lin.weight.data = np.ones((3, 4))  # float64 weight, float32 bias
    with pytest.raises(TypeError, match="bias has dtype float32 but weight has float64"):
        lin(x.astype(np.float64))
    lin = nn.Linear(4, 3)
    with pytest.raises(TypeError, match="gradient of dtype float64 to a parameter of dtype "
                                        "float32"):   # (PyTorch refuses it there too)
        lin.weight.grad = np.zeros((3, 4))
    assert lin.weight.grad.dtype == np.float32
    run(lin)


def test_batchnorm_refuses_mismatched_buffers_and_changes_nothing(backend):
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    bn = nn.BatchNorm1d(3)
    bn(x)
    bn.running_mean = np.zeros(3)  # float64 buffer in a float32 layer
    state = bn.state_dict()
    with pytest.raises(TypeError, match="running_mean has dtype float64"):
        bn(x)
    _same_state(bn, state)
    assert bn.num_batches_tracked == 1
    bn = nn.BatchNorm1d(3).eval()
    bn.running_var = np.ones(2, np.float32)
    with pytest.raises(ValueError, match=r"expected running_var of shape \(3,\), got \(2,\)"):
        bn(x)
    bn = nn.BatchNorm1d(3, mean_only=True)
    bn.bias.data = np.zeros(4, np.float32)
    with pytest.raises(ValueError, match=r"expected bias of shape \(3,\), got \(4,\)"):
        nn.Sequential(nn.Linear(3, 3), bn)(x)


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("attr,value,error", [
    ("running_mean", np.zeros(3), TypeError), ("running_var", np.ones(4, np.float32), ValueError)])
def test_instance_norm_refuses_mismatched_running_statistics_and_changes_nothing(
        backend, mode, attr, value, error):
    x = np.random.default_rng(0).standard_normal((2, 3, 5)).astype(np.float32)
    norm = getattr(nn.InstanceNorm1d(3, affine=True, track_running_stats=True), mode)()
    setattr(norm, attr, value)
    state = norm.state_dict()
    with pytest.raises(error, match=f"InstanceNorm1d.*{attr}"):
        norm(x)
    _same_state(norm, state)


def test_cross_entropy_float_labels_say_labels_need_an_integer_dtype(backend):
    logits = np.zeros((5, 4))
    with pytest.raises(TypeError, match=r"expected integer class labels \(5,\) or "
                                        r"probabilities \(5, 4\), got a float64 target of "
                                        r"shape \(5,\)"):
        nn.CrossEntropyLoss()(logits, np.arange(5) % 4 * 1.0)
    with pytest.raises(TypeError, match="integer dtype"):
        nn.CrossEntropyLoss(label_smoothing=0.1)(logits, np.zeros(5))
    # integer labels of any width, and one-hot rows, still give torch's loss
    y = np.array([0, 3, 1, 2, 3])
    expected = torch.nn.functional.cross_entropy(torch.zeros(5, 4, dtype=torch.float64),
                                                 torch.tensor(y)).item()
    for dtype in (np.int8, np.uint8, np.int16, np.int32, np.uint64):
        assert nn.CrossEntropyLoss()(logits, y.astype(dtype)) == pytest.approx(expected,
                                                                               rel=1e-14)
    assert nn.CrossEntropyLoss()(logits, np.eye(4)[y]) == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make,attr,value,x_shape,error", [
    (lambda: nn.Conv2d(3, 4, 3), "bias", np.zeros(4), (2, 3, 8, 8), TypeError),
    (lambda: nn.Conv2d(3, 4, 3), "weight", np.zeros((4, 3, 5, 5), np.float32), (2, 3, 8, 8),
     ValueError),
    (lambda: nn.Conv1d(3, 4, 3), "weight", np.zeros((4, 3, 2), np.float32), (2, 3, 8),
     ValueError),
    (lambda: nn.LayerNorm(4), "weight", np.ones(3, np.float32), (2, 4), ValueError),
    (lambda: nn.LayerNorm(4), "bias", np.ones(4), (2, 4), TypeError),
    # the transposed and 3-D convolutions too (the Cython ConvTranspose2d ran an (out,
    # in) weight as if it fitted, NumPy's failed in a reshape not naming the layer)
    (lambda: nn.ConvTranspose2d(3, 4, 3), "weight", np.zeros((4, 3, 3, 3), np.float32),
     (2, 3, 5, 5), ValueError),
    (lambda: nn.ConvTranspose2d(3, 4, 3), "bias", np.zeros(4), (2, 3, 5, 5), TypeError),
    (lambda: nn.ConvTranspose1d(3, 4, 3), "weight", np.zeros((3, 4, 2), np.float32),
     (2, 3, 5), ValueError),
    (lambda: nn.Conv3d(3, 4, 2), "weight", np.zeros((4, 3, 2, 2), np.float32),
     (2, 3, 4, 4, 4), ValueError),
    (lambda: nn.Conv3d(3, 4, 2), "bias", np.zeros(5, np.float32), (2, 3, 4, 4, 4),
     ValueError),
    (lambda: nn.ConvTranspose3d(3, 4, 2), "weight", np.zeros((4, 3, 2, 2, 2), np.float32),
     (2, 3, 4, 4, 4), ValueError),
    (lambda: nn.ConvTranspose3d(3, 4, 2), "bias", np.zeros(4), (2, 3, 4, 4, 4), TypeError),
    # and the grouped norms (the compiled GroupNorm read 3 of a 4-entry weight, and
    # NumPy's and numba's took a float64 bias in a float32 layer)
    (lambda: nn.GroupNorm(1, 3), "weight", np.ones(4, np.float32), (2, 3, 4), ValueError),
    (lambda: nn.GroupNorm(1, 3), "bias", np.zeros(3), (2, 3, 4), TypeError),
    (lambda: nn.InstanceNorm1d(3, affine=True), "weight", np.ones(2, np.float32), (2, 3, 4),
     ValueError),
    (lambda: nn.InstanceNorm1d(3, affine=True), "bias", np.zeros(3), (2, 3, 4), TypeError)])
def test_conv_and_layernorm_check_assigned_parameters(backend, make, attr, value, x_shape,
                                                      error):
    with fastnn.use_backend(backend):
        layer = make()
        before = {k: v.copy() for k, v in layer.state_dict().items() if k != attr}
        getattr(layer, attr).data = value
        with pytest.raises(error, match=type(layer).__name__):
            layer(np.ones(x_shape, np.float32))
        for k, v in before.items():
            np.testing.assert_array_equal(layer.state_dict()[k], v)
