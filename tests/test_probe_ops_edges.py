"""Edges found by probing fastnn.ops against PyTorch 2.13:

* a loss is the value PyTorch's loss tensor holds: the kernels sum in float64, and the
  loss comes back rounded to the inputs' dtype, so a float32 loss past float32's range
  is inf on every backend (it was 4e60 on numpy and cython and inf on numba, whose
  squares were float32 where the others' are float64);
* batch normalisation with eps 0: PyTorch's F.batch_norm refuses it in training, and its
  kernels (aten.native_batch_norm, instance_norm) give a constant channel invstd 0, so
  y = bias, instead of 0 / 0;
* dropout at p = 1 (PyTorch's F.dropout takes it: y = x * 0) was refused by the op,
  though nn.Dropout took it.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import fastnn
from fastnn import nn, ops
from fastnn.nn import functional as F

BACKENDS = [b for b in fastnn.backends() if b != "cuda"]


@pytest.mark.parametrize("name", BACKENDS)
def test_a_float32_loss_past_float32s_range_is_inf_as_torchs(name):
    p = np.full((2, 2), 1e30, np.float32)
    expected = TF.mse_loss(torch.from_numpy(p), torch.from_numpy(-p)).item()
    assert expected == np.inf
    with fastnn.use_backend(name):
        assert ops.mse_loss(p, -p)[0] == np.inf
        assert nn.MSELoss()(p, -p) == np.inf
        assert nn.MSELoss(reduction="sum")(p, -p) == np.inf
        # a finite loss keeps its float64 type for the user (loss.item() of PyTorch)
        assert type(nn.MSELoss()(p * 1e-20, -p * 1e-20)) is np.float64


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_losses_are_rounded_to_the_inputs_dtype(name, dtype, rng):
    x = rng.standard_normal((33, 7)).astype(dtype)
    t = rng.standard_normal((33, 7)).astype(dtype)
    labels = rng.integers(0, 7, 33)
    probs = 1 / (1 + np.exp(-x))
    with fastnn.use_backend(name):
        values = [ops.mse_loss(x, t)[0], ops.smooth_l1_loss(x, t, 0.5)[0],
                  ops.bce_with_logits_loss(x, (t > 0).astype(dtype))[0],
                  ops.bce_loss(probs, (t > 0).astype(dtype))[0],
                  ops.softmax_cross_entropy(x, labels)[0],
                  nn.CrossEntropyLoss()(x, labels), nn.MSELoss(reduction="sum")(x, t)]
    torch_values = [TF.mse_loss(torch.from_numpy(x), torch.from_numpy(t)).item(),
                    TF.cross_entropy(torch.from_numpy(x), torch.from_numpy(labels)).item()]
    for v in values:
        assert float(np.dtype(dtype).type(v)) == v   # representable in the dtype
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose([values[0], values[4]], torch_values, rtol=rtol)


@pytest.mark.parametrize("name", BACKENDS)
def test_float32_squares_are_summed_in_float64_on_every_backend(name):
    # 2e19 squared overflows float32; the mean over 100 values does not
    p = np.zeros(100, np.float32)
    p[3] = 2e19
    t = np.zeros_like(p)
    with fastnn.use_backend("numpy"):
        reference = ops.mse_loss(p, t)[0], ops.smooth_l1_loss(p, t, 1e30)[0]
    with fastnn.use_backend(name):
        got = ops.mse_loss(p, t)[0], ops.smooth_l1_loss(p, t, 1e30)[0]
    assert np.isfinite(reference).all()
    np.testing.assert_allclose(got, reference, rtol=1e-7)


def test_batch_norm_eps_zero_is_refused_in_training_as_torchs():
    x = np.ones((4, 2), np.float32)
    ones, zeros = np.ones(2, np.float32), np.zeros(2, np.float32)
    with pytest.raises(ValueError, match="eps must be positive during training"):
        TF.batch_norm(torch.from_numpy(x), None, None, training=True, eps=0.0)
    with pytest.raises(ValueError, match="eps must be positive during training"):
        F.batch_norm(x, zeros.copy(), ones.copy(), training=True, eps=0.0)
    y = F.batch_norm(x, zeros, ones, training=False, eps=0.0)   # eval: allowed
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 2)])
def test_a_constant_channel_with_eps_zero_gives_bias_as_torchs_kernel(name, shape, rng):
    x = rng.standard_normal(shape)
    x[:, 1] = 2.5                                  # channel 1 constant: variance 0
    c = shape[1]
    w, b = rng.standard_normal(c), rng.standard_normal(c)
    g = rng.standard_normal(shape)
    t = [torch.from_numpy(a.copy()) for a in (x, w, b, np.zeros(c), np.ones(c))]
    ty, tmean, tinvstd = torch.ops.aten.native_batch_norm(*t, True, 0.1, 0.0)
    tgrad = torch.ops.aten.native_batch_norm_backward(
        torch.from_numpy(g), t[0], t[1], None, None, tmean, tinvstd, True, 0.0,
        [True, True, True])
    with fastnn.use_backend(name):
        y, mean, invstd = ops.batchnorm_forward(x, w, b, np.zeros(c), np.ones(c), True, 0.1,
                                                0.0)
        gw, gb = np.zeros(c), np.zeros(c)
        gi = ops.batchnorm_backward(g, x, w, mean, invstd, True, grad_weight=gw, grad_bias=gb)
        inst = F.instance_norm(x, eps=0.0) if len(shape) == 4 else None
    assert invstd[1] == 0 and tinvstd[1].item() == 0
    np.testing.assert_allclose(y, ty.numpy(), rtol=1e-12, atol=1e-12)
    for got, want in zip((gi, gw, gb), tgrad):
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-10, atol=1e-12)
    if inst is not None:
        want = TF.instance_norm(torch.from_numpy(x), eps=0.0).numpy()
        np.testing.assert_allclose(inst, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", BACKENDS)
def test_dropout_op_at_p_one_drops_everything_as_torch(name):
    x = np.array([1.0, np.nan, np.inf, -2.0, 0.5], np.float32)
    want = TF.dropout(torch.from_numpy(x), 1.0).numpy()
    with fastnn.use_backend(name):
        y, mask = ops.dropout_forward(x, 1.0, 7)
        out, into = np.empty_like(x), np.full_like(x, 5.0)
        y2, mask2 = ops.dropout_forward(x, 1, 7, mask=into, out=out)
        grad = ops.dropout_backward(np.ones_like(x), mask)
    np.testing.assert_array_equal(y, want)   # (NaN where x is NaN or inf, as PyTorch's)
    assert y2 is out and mask2 is into
    np.testing.assert_array_equal(y2, want)
    np.testing.assert_array_equal(mask, np.zeros_like(x))
    np.testing.assert_array_equal(mask2, np.zeros_like(x))
    np.testing.assert_array_equal(grad, np.zeros_like(x))


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("momentum,alpha", [(1.0, 0.99), (1.5, 1.5), (0.5, 0.0)])
def test_update_ops_take_torch_optims_bounds(name, momentum, alpha, rng):
    """torch.optim.SGD and RMSprop bound momentum (and alpha) below only; the ops were
    stricter than the optimizers that run them."""
    p0 = rng.standard_normal(6)
    grads = [rng.standard_normal(6) for _ in range(3)]
    tp = [torch.tensor(p0, requires_grad=True) for _ in range(2)]
    t_opts = [torch.optim.SGD([tp[0]], lr=0.01, momentum=momentum),
              torch.optim.RMSprop([tp[1]], lr=0.01, alpha=alpha, momentum=momentum)]
    with fastnn.use_backend(name):
        p, v = p0.copy(), np.zeros(6)
        q, sq, buf = p0.copy(), np.zeros(6), np.zeros(6)
        for g in grads:
            ops.sgd_update(p, g, v, 0.01, momentum)
            ops.rmsprop_update(q, g, sq, 0.01, alpha, momentum=momentum, momentum_buffer=buf)
            for t, opt in zip(tp, t_opts):
                t.grad = torch.from_numpy(g.copy())
                opt.step()
    np.testing.assert_allclose(p, tp[0].detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(q, tp[1].detach().numpy(), rtol=1e-12)


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("beta", [-1.0, -0.5, 0.0])
def test_softplus_op_takes_any_beta_as_torch(name, beta):
    x = np.array([-30, 0.5, 30, 0, -1e-3, np.inf, -np.inf, np.nan])
    tx = torch.from_numpy(x.copy()).requires_grad_()
    ty = TF.softplus(tx, beta=beta)
    ty.backward(torch.ones_like(ty))
    with fastnn.use_backend(name), np.errstate(all="ignore"):
        y = ops.softplus(x, beta=beta)
        g = ops.softplus_backward(np.ones_like(x), x, beta=beta)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(g, tx.grad.numpy(), rtol=1e-12)
