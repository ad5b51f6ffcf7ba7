"""nn.utils' parameters_to_vector / vector_to_parameters, get_total_norm /
clip_grads_with_norm_, conv/linear + BatchNorm fusion and skip_init, against
torch.nn.utils on the same weights."""
import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn
from fastnn.nn import utils

from conftest import assert_close
from nn_torch_helpers import TORCH_DTYPES


def _model(dtype, rng):
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Conv1d(3, 2, 2))
    model.to(dtype)
    for p in model.parameters():
        p.grad[...] = rng.standard_normal(p.shape) * 2
    return model


def _torch_params(model):
    params = []
    for p in model.parameters():
        t = torch.nn.Parameter(torch.from_numpy(p.data.copy()))
        t.grad = torch.from_numpy(p.grad.copy())
        params.append(t)
    return params


def test_parameters_to_vector_and_back(dtype, rng):
    model = _model(dtype, rng)
    tparams = _torch_params(model)
    vec = utils.parameters_to_vector(model.parameters())
    expected = torch.nn.utils.parameters_to_vector(tparams).detach().numpy()
    assert vec.dtype == dtype and vec.shape == expected.shape
    np.testing.assert_array_equal(vec, expected)
    vec[0] = 99.0  # a copy: the parameters keep their values
    assert model[0].weight.data[0, 0] != 99.0
    new = rng.standard_normal(vec.shape).astype(dtype)
    arrays = [p.data for p in model.parameters()]
    assert utils.vector_to_parameters(new, model.parameters()) is None
    torch.nn.utils.vector_to_parameters(torch.from_numpy(new.copy()), tparams)
    for p, a, t in zip(model.parameters(), arrays, tparams):
        assert p.data is a and p.data.dtype == dtype  # written in place
        np.testing.assert_array_equal(p.data, t.detach().numpy())
    new[0] = 5.0  # ... and not a view of the vector
    assert model[0].weight.data[0, 0] != 5.0
    # mixed dtypes promote, as torch.cat does
    mixed = [nn.Parameter(np.ones(2, np.float32)), nn.Parameter(np.zeros((1, 2)))]
    assert utils.parameters_to_vector(mixed).dtype == np.float64


def test_vector_errors():
    params = nn.Linear(2, 2).parameters()
    with pytest.raises(TypeError, match="expected an array, but got: list"):
        utils.vector_to_parameters([0.0] * 6, params)
    with pytest.raises(RuntimeError, match="hold 6 elements but vec has 5"):
        utils.vector_to_parameters(np.zeros(5, np.float32), params)
    before = [p.data.copy() for p in params]
    with pytest.raises(RuntimeError, match="hold 6 elements but vec has 7"):
        utils.vector_to_parameters(np.zeros(7, np.float32), params)
    for p, b in zip(params, before):
        np.testing.assert_array_equal(p.data, b)
    with pytest.raises(TypeError, match="1-D float array"):
        utils.vector_to_parameters(np.zeros((2, 3)), params)
    with pytest.raises(RuntimeError, match="non-empty"):
        utils.parameters_to_vector([])
    with pytest.raises(TypeError, match="iterable of Parameters"):
        utils.parameters_to_vector(params[0])


@pytest.mark.parametrize("norm_type", [2.0, 1, 3.5, float("inf"), "inf", 0])
def test_get_total_norm_and_clip_grads_with_norm(dtype, rng, norm_type):
    model = _model(dtype, rng)
    tparams = _torch_params(model)
    grads = [p.grad for p in model.parameters()]
    total = utils.get_total_norm(grads, norm_type)
    expected = torch.nn.utils.get_total_norm([t.grad for t in tparams], norm_type)
    assert isinstance(total, float)
    assert_close(total, expected.item(), dtype, scale=10)
    assert utils.clip_grads_with_norm_(model.parameters(), 0.5, total) is None
    torch.nn.utils.clip_grads_with_norm_(tparams, 0.5, expected)
    for p, t in zip(model.parameters(), tparams):
        assert p.grad.dtype == dtype
        assert_close(p.grad, t.grad.numpy(), dtype)
    # clip_grad_norm_ is the two together
    again = _model(dtype, np.random.default_rng(0))
    twin = _model(dtype, np.random.default_rng(0))
    norm = utils.clip_grad_norm_(again.parameters(), 0.5, norm_type)
    assert norm == utils.get_total_norm([p.grad for p in twin.parameters()], norm_type)
    utils.clip_grads_with_norm_(twin.parameters(), 0.5, norm)
    for p, q in zip(again.parameters(), twin.parameters()):
        np.testing.assert_array_equal(p.grad, q.grad)


def test_total_norm_edges(rng):
    a = rng.standard_normal((3, 4))
    assert utils.get_total_norm(a) == pytest.approx(np.linalg.norm(a), rel=1e-12)
    assert utils.get_total_norm(nn.Parameter(a)) == pytest.approx(np.linalg.norm(a))
    assert utils.get_total_norm([]) == 0.0
    a[0, 0] = np.nan
    assert np.isnan(utils.get_total_norm([a]))
    with pytest.raises(RuntimeError, match="non-finite"):
        utils.get_total_norm([a], error_if_nonfinite=True)
    model = nn.Linear(2, 2)
    model.weight.grad[...] = 1.0
    utils.clip_grads_with_norm_(model.parameters(), 1.0, np.float32(2.0))  # scales by 1/2
    assert_close(model.weight.grad, 0.5 / (2 + 1e-6) * 2, np.float32)
    utils.clip_grads_with_norm_(model.parameters(), 10.0, 2.0)  # above 1: unchanged
    assert_close(model.weight.grad, 0.5 / (2 + 1e-6) * 2, np.float32)
    with pytest.raises(ValueError, match="total_norm to be a number >= 0"):
        utils.clip_grads_with_norm_(model.parameters(), 1.0, -1.0)
    with pytest.raises(ValueError, match="max_norm to be a number >= 0"):
        utils.clip_grads_with_norm_(model.parameters(), -1.0, 1.0)
    with pytest.raises(ValueError, match="norm_type to be a number"):
        utils.get_total_norm([a], norm_type=float("nan"))
    with pytest.warns(UserWarning, match="empty generator"):
        assert utils.clip_grad_norm_((p for p in []), 1.0) == 0.0
    with pytest.warns(FutureWarning, match="deprecated in favor of `nn.utils.clip_grad_norm_`"):
        utils.clip_grad_norm(model.parameters(), 1.0)


def _batchnorm(bn, rng, dtype):
    """Random statistics and affine parameters, and the torch twin's copies."""
    c = bn.num_features
    bn.to(dtype)
    bn.running_mean[...] = rng.standard_normal(c)
    bn.running_var[...] = rng.uniform(0.3, 2.0, c)
    if bn.weight is not None:
        bn.weight.data[...] = rng.uniform(0.5, 1.5, c)
        bn.bias.data[...] = rng.standard_normal(c)
    return bn.eval()


def _torch_like(layer, torch_layer):
    torch_layer = torch_layer.to(TORCH_DTYPES[layer.weight.dtype])
    with torch.no_grad():
        torch_layer.weight.copy_(torch.from_numpy(layer.weight.data))
        if layer.bias is not None:
            torch_layer.bias.copy_(torch.from_numpy(layer.bias.data))
    return torch_layer.eval()


def _torch_bn(bn, cls):
    tbn = cls(bn.num_features, eps=bn.eps, affine=bn.weight is not None)
    tbn = tbn.to(TORCH_DTYPES[bn.running_mean.dtype])
    with torch.no_grad():
        tbn.running_mean.copy_(torch.from_numpy(bn.running_mean))
        tbn.running_var.copy_(torch.from_numpy(bn.running_var))
        if bn.weight is not None:
            tbn.weight.copy_(torch.from_numpy(bn.weight.data))
            tbn.bias.copy_(torch.from_numpy(bn.bias.data))
    return tbn.eval()


@pytest.mark.parametrize("kind", ["conv2d", "conv2d_nobias_groups", "conv1d", "transpose"])
def test_fuse_conv_bn_eval(dtype, rng, kind):
    if kind == "conv2d":
        conv, tconv = nn.Conv2d(3, 4, 3, padding=1), torch.nn.Conv2d(3, 4, 3, padding=1)
        bn, tcls, x = nn.BatchNorm2d(4), torch.nn.BatchNorm2d, rng.standard_normal((2, 3, 5, 5))
    elif kind == "conv2d_nobias_groups":
        conv = nn.Conv2d(4, 6, 2, groups=2, bias=False)
        tconv = torch.nn.Conv2d(4, 6, 2, groups=2, bias=False)
        bn, tcls = nn.BatchNorm2d(6, affine=False, eps=1e-3), torch.nn.BatchNorm2d
        x = rng.standard_normal((2, 4, 4, 3))
    elif kind == "conv1d":
        conv, tconv = nn.Conv1d(3, 5, 3, bias=False), torch.nn.Conv1d(3, 5, 3, bias=False)
        bn, tcls, x = nn.BatchNorm1d(5), torch.nn.BatchNorm1d, rng.standard_normal((3, 3, 7))
    else:
        conv = nn.ConvTranspose2d(3, 4, 3, stride=2)
        tconv = torch.nn.ConvTranspose2d(3, 4, 3, stride=2)
        bn, tcls, x = nn.BatchNorm2d(4), torch.nn.BatchNorm2d, rng.standard_normal((2, 3, 3, 4))
    conv.to(dtype)
    x = x.astype(dtype)
    conv(x)  # a forward's caches are not carried into the fused copy
    bn = _batchnorm(bn, rng, dtype)
    conv.eval()
    tconv, tbn = _torch_like(conv, tconv), _torch_bn(bn, tcls)
    transpose = kind == "transpose"
    fused = utils.fuse_conv_bn_eval(conv, bn, transpose=transpose)
    expected = torch.nn.utils.fuse_conv_bn_eval(tconv, tbn, transpose=transpose)
    assert type(fused) is type(conv) and fused is not conv and not fused.training
    assert fused.weight.dtype == dtype and fused.bias.dtype == dtype
    assert_close(fused.weight.data, expected.weight.detach().numpy(), dtype)
    assert_close(fused.bias.data, expected.bias.detach().numpy(), dtype)
    assert fused.bias.requires_grad == expected.bias.requires_grad
    assert list(fused.state_dict()) == list(expected.state_dict())
    assert repr(fused) == repr(expected)
    assert_close(fused(x), bn(conv(x)), dtype, scale=10)
    assert_close(fused(x), expected(torch.from_numpy(x)).detach().numpy(), dtype, scale=10)
    # the originals are untouched
    assert_close(conv.weight.data, tconv.weight.detach().numpy(), dtype)
    assert (conv.bias is None) == (tconv.bias is None)
    # the weights alone
    w, b = utils.fuse_conv_bn_weights(conv.weight.data, None, bn.running_mean,
                                      bn.running_var, bn.eps, bn.weight, bn.bias, transpose)
    tw, tb = torch.nn.utils.fuse_conv_bn_weights(
        tconv.weight.detach(), None, tbn.running_mean, tbn.running_var, tbn.eps,
        tbn.weight, tbn.bias, transpose)
    assert isinstance(w, nn.Parameter) and not w.requires_grad and not b.requires_grad
    assert_close(w.data, tw.detach().numpy(), dtype)
    assert_close(b.data, tb.detach().numpy(), dtype)


@pytest.mark.parametrize("bias,features", [(True, 4), (False, 4), (False, 1)])
def test_fuse_linear_bn_eval(dtype, rng, bias, features):
    linear = nn.Linear(3, 4, bias=bias).to(dtype).eval()
    bn = _batchnorm(nn.BatchNorm1d(features), rng, dtype)
    tlinear = _torch_like(linear, torch.nn.Linear(3, 4, bias=bias))
    tbn = _torch_bn(bn, torch.nn.BatchNorm1d)
    fused = utils.fuse_linear_bn_eval(linear, bn)
    expected = torch.nn.utils.fuse_linear_bn_eval(tlinear, tbn)
    assert isinstance(fused, nn.Linear) and fused.weight.dtype == dtype
    assert_close(fused.weight.data, expected.weight.detach().numpy(), dtype)
    assert_close(np.broadcast_to(expected.bias.detach().numpy(), (4,)), fused.bias.data, dtype)
    x = rng.standard_normal((5, 3)).astype(dtype)
    expect = expected(torch.from_numpy(x)).detach().numpy()
    assert_close(fused(x), expect, dtype, scale=10)
    if features == 4:
        assert_close(fused(x), bn(linear(x)), dtype, scale=10)
    w, b = utils.fuse_linear_bn_weights(linear.weight, linear.bias, bn.running_mean,
                                        bn.running_var, bn.eps, bn.weight, bn.bias)
    assert w.requires_grad and b.requires_grad == bias


def test_fusion_errors():
    conv, bn = nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3)
    with pytest.raises(AssertionError, match="Fusion only for eval!"):
        utils.fuse_conv_bn_eval(conv, bn.eval())
    with pytest.raises(AssertionError, match="Fusion only for eval!"):
        utils.fuse_linear_bn_eval(nn.Linear(2, 3).eval(), nn.BatchNorm1d(3))
    with pytest.raises(AssertionError, match="running_var must not be None"):
        utils.fuse_conv_bn_eval(conv.eval(), nn.BatchNorm2d(3, track_running_stats=False).eval())
    with pytest.raises(AssertionError, match="out_features == bn.num_features"):
        utils.fuse_linear_bn_eval(nn.Linear(2, 3).eval(), nn.BatchNorm1d(2).eval())
    with pytest.raises(RuntimeError, match="transpose=True"):
        utils.fuse_conv_bn_eval(nn.ConvTranspose2d(2, 3, 1).eval(), bn.eval())


def test_skip_init_leaves_parameters_uninitialised(dtype):
    fastnn.manual_seed(7)
    expected_next = fastnn.random.generator().random()
    fastnn.manual_seed(7)
    layer = utils.skip_init(nn.Linear, 5, out_features=3, dtype=dtype)
    assert fastnn.random.generator().random() == expected_next  # no draw
    assert isinstance(layer, nn.Linear) and layer.weight.shape == (3, 5)
    assert layer.weight.dtype == dtype and layer.bias.shape == (3,)
    bn = utils.skip_init(nn.BatchNorm2d, 4, device="cpu")
    assert bn.running_var.shape == (4,) and bn.device == "cpu"
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    x = np.ones((2, 5), dtype)
    assert_close(layer(x), x @ layer.weight.data.T, dtype)
    with pytest.raises(RuntimeError, match="Expected a Module"):
        utils.skip_init(torch.nn.Linear, 2, 2)
    with pytest.raises(RuntimeError, match="Expected a Module"):
        utils.skip_init(nn.Linear(2, 2))


@pytest.mark.parametrize("norm_type", [-float("inf"), -1.0, -2.5, 0.5, 3.5])
@pytest.mark.parametrize("with_zero", [False, True])
def test_clip_grad_norm_takes_any_order_as_torch(rng, norm_type, with_zero):
    """Negative orders as torch's vector norms: -inf the smallest magnitude, a zero
    gradient entry making a negative order's norm 0."""
    import torch
    grads = [rng.standard_normal(shape).astype(np.float32) for shape in [(3,), (2, 4)]]
    if with_zero:
        grads[1][0, 1] = 0
    ours = [nn.Parameter(np.ones(g.shape, np.float32)) for g in grads]
    theirs = [torch.nn.Parameter(torch.ones(g.shape)) for g in grads]
    for p, t, g in zip(ours, theirs, grads):
        p.grad, t.grad = g.copy(), torch.from_numpy(g.copy())
    expected = torch.nn.utils.clip_grad_norm_(theirs, 0.7, norm_type=norm_type).item()
    total = utils.clip_grad_norm_(ours, 0.7, norm_type=norm_type)
    assert total == pytest.approx(expected, rel=1e-5)
    for p, t in zip(ours, theirs):
        assert_close(p.grad, t.grad.numpy(), np.float32)


@pytest.mark.parametrize("norm_type", [-1.0, -0.5, -2.5])
def test_a_negative_order_norm_with_an_empty_gradient_is_an_error_as_in_pytorch(norm_type):
    """PyTorch's vector norm of a negative order has no identity for an empty tensor
    (RuntimeError); fastnn's summed the other arrays' norms as if it were not there."""
    grads = [np.ones(3), np.zeros((2, 0))]
    with pytest.raises(RuntimeError, match="empty tensor"):
        torch.nn.utils.get_total_norm([torch.tensor(g) for g in grads], norm_type)
    with pytest.raises(RuntimeError, match="norm of an empty array is undefined"):
        utils.get_total_norm(grads, norm_type)
    params = [nn.Parameter(np.zeros(3)), nn.Parameter(np.zeros((2, 0)))]
    params[0].grad, params[1].grad = np.full(3, 2.0), np.zeros((2, 0))
    with pytest.raises(RuntimeError, match="norm of an empty array is undefined"):
        utils.clip_grad_norm_(params, 1.0, norm_type)
    np.testing.assert_array_equal(params[0].grad, np.full(3, 2.0))  # left as it was
