"""Conv1d, MaxPool1d, AvgPool1d, BatchNorm3d, Unflatten and Softmax/LogSoftmax over any
axis against their PyTorch twins
(built by loading the fastnn layer's state dict into the torch layer), on every backend
in float32 and float64."""
import math

import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn

from conftest import assert_close
from nn_torch_helpers import TORCH_DTYPES

torch.set_num_threads(2)


def torch_copy(layer, twin):
    """twin with the fastnn layer's state dict loaded (the keys and shapes must match)."""
    state = {k: torch.from_numpy(np.array(v)) for k, v in layer.state_dict().items()}
    assert list(state) == list(twin.state_dict())
    assert twin.load_state_dict(state) == ([], [])
    twin.train(layer.training)
    return twin


def check_against(layer, twin, x, rng, dtype, scale=10.0):
    """Forward and backward through both; outputs, input gradients and parameter
    gradients agree."""
    twin = torch_copy(layer, twin.to(TORCH_DTYPES[np.dtype(dtype)]))
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = twin(tx)
    g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.from_numpy(g))
    y = layer.forward(x)
    grad_in = layer.backward(g)
    assert y.shape == tuple(ty.shape) and y.dtype == dtype
    assert_close(y, ty.detach().numpy(), dtype, scale)
    assert grad_in.shape == x.shape
    assert_close(grad_in, tx.grad.numpy(), dtype, scale)
    params = dict(layer.named_parameters())
    for name, p in twin.named_parameters():
        assert_close(params[name].grad, p.grad.numpy(), dtype, 30, err_msg=name)
    for name, buf in twin.named_buffers():
        if not name.endswith("num_batches_tracked"):
            assert_close(dict(layer.named_buffers())[name], buf.numpy(), dtype, 10,
                         err_msg=name)


@pytest.mark.parametrize("args", [
    dict(in_channels=3, out_channels=4, kernel_size=3, padding=1),
    dict(in_channels=2, out_channels=5, kernel_size=4, stride=2),
    dict(in_channels=4, out_channels=3, kernel_size=1, bias=False),
    dict(in_channels=2, out_channels=3, kernel_size=5, padding="same"),
    dict(in_channels=2, out_channels=3, kernel_size=(3,), stride=(3,), padding=(2,)),
], ids=["k3pad1", "k4stride2", "k1nobias", "k5same", "tuples"])
def test_conv1d_matches_torch(backend, dtype, rng, args):
    layer = nn.Conv1d(**args).to_dtype(dtype)
    assert layer.weight.shape == (args["out_channels"], args["in_channels"],
                                  layer.kernel_size[0])
    x = rng.standard_normal((3, args["in_channels"], 17)).astype(dtype)
    torch_args = {k: v for k, v in args.items()}
    check_against(layer, torch.nn.Conv1d(**torch_args), x, rng, dtype,
                  math.sqrt(layer.weight.data[0].size))


def test_conv1d_unbatched_and_in_a_sequential(backend, dtype, rng):
    model = nn.Sequential(nn.Conv1d(2, 4, 3), nn.ReLU(), nn.MaxPool1d(2), nn.Conv1d(4, 3, 3,
                          padding=1), nn.AvgPool1d(3, stride=1, padding=1), nn.Flatten(),
                          nn.Linear(15, 2)).to_dtype(dtype)
    twin = torch.nn.Sequential(torch.nn.Conv1d(2, 4, 3), torch.nn.ReLU(), torch.nn.MaxPool1d(2),
                               torch.nn.Conv1d(4, 3, 3, padding=1),
                               torch.nn.AvgPool1d(3, stride=1, padding=1), torch.nn.Flatten(),
                               torch.nn.Linear(15, 2))
    check_against(model, twin, rng.standard_normal((4, 2, 12)).astype(dtype), rng, dtype)
    one = nn.Conv1d(2, 4, 3).to_dtype(dtype)
    check_against(one, torch.nn.Conv1d(2, 4, 3), rng.standard_normal((2, 9)).astype(dtype),
                  rng, dtype)


@pytest.mark.parametrize("cls,tcls,args", [
    (nn.MaxPool1d, torch.nn.MaxPool1d, dict(kernel_size=3, stride=2, padding=1)),
    (nn.MaxPool1d, torch.nn.MaxPool1d, dict(kernel_size=2)),
    (nn.AvgPool1d, torch.nn.AvgPool1d, dict(kernel_size=3, stride=2, padding=1)),
    (nn.AvgPool1d, torch.nn.AvgPool1d, dict(kernel_size=3, padding=1, count_include_pad=False)),
    (nn.MaxPool1d, torch.nn.MaxPool1d, dict(kernel_size=3, stride=2, ceil_mode=True)),
    (nn.MaxPool1d, torch.nn.MaxPool1d, dict(kernel_size=3, padding=1, dilation=2)),
    (nn.AvgPool1d, torch.nn.AvgPool1d, dict(kernel_size=2, stride=3, padding=1,
                                            ceil_mode=True)),
], ids=["max-k3s2p1", "max-k2", "avg-k3s2p1", "avg-exclude-pad", "max-ceil", "max-dilation",
        "avg-ceil"])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
def test_pool1d_matches_torch(backend, dtype, rng, cls, tcls, args, batched):
    shape = (2, 3, 11) if batched else (3, 11)
    check_against(cls(**args), tcls(**args), rng.standard_normal(shape).astype(dtype), rng,
                  dtype)


@pytest.mark.parametrize("cls,tcls,args", [
    (nn.MaxPool2d, torch.nn.MaxPool2d, dict(kernel_size=3, stride=2, ceil_mode=True)),
    (nn.MaxPool2d, torch.nn.MaxPool2d, dict(kernel_size=(2, 3), stride=(3, 2), padding=1,
                                            ceil_mode=True)),
    (nn.MaxPool2d, torch.nn.MaxPool2d, dict(kernel_size=3, stride=2, padding=1, dilation=(2, 3),
                                            ceil_mode=True)),
    (nn.AvgPool2d, torch.nn.AvgPool2d, dict(kernel_size=3, stride=2, padding=1,
                                            ceil_mode=True)),
    (nn.AvgPool2d, torch.nn.AvgPool2d, dict(kernel_size=2, stride=3, padding=1,
                                            ceil_mode=True, count_include_pad=False)),
    (nn.AvgPool2d, torch.nn.AvgPool2d, dict(kernel_size=3, stride=2, padding=1,
                                            divisor_override=4)),
    (nn.AvgPool2d, torch.nn.AvgPool2d, dict(kernel_size=2, stride=3, ceil_mode=True,
                                            divisor_override=3)),
], ids=["max-k3s2", "max-k2x3s3x2p1", "max-dilated", "avg-k3s2p1", "avg-k2s3p1-exclude",
        "avg-divisor", "avg-ceil-divisor"])
def test_pool2d_ceil_mode_dilation_and_divisor_match_torch(backend, dtype, rng, cls, tcls, args):
    """10x9 inputs: with ceil_mode the last windows run past the padding (or the edge)."""
    layer = cls(**args)
    assert layer.infer_shape((2, 3, 10, 9), dtype) == tuple(
        tcls(**args)(torch.zeros(2, 3, 10, 9)).shape)
    check_against(layer, tcls(**args), rng.standard_normal((2, 3, 10, 9)).astype(dtype), rng,
                  dtype)


def test_googlenet_style_ceil_mode_stem_trains_like_torch(rng):
    """Conv, ceil-mode max pooling and a ceil-mode average pooling head, a step of SGD,
    against the same network in PyTorch (float64)."""
    from fastnn import optim
    dtype = np.float64
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1, dtype=dtype), nn.ReLU(),
                          nn.MaxPool2d(3, 2, ceil_mode=True),
                          nn.AvgPool2d(3, 2, ceil_mode=True), nn.Flatten(),
                          nn.Linear(4 * 2 * 2, 5, dtype=dtype))
    tmodel = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                                 torch.nn.MaxPool2d(3, 2, ceil_mode=True),
                                 torch.nn.AvgPool2d(3, 2, ceil_mode=True), torch.nn.Flatten(),
                                 torch.nn.Linear(4 * 2 * 2, 5)).double()
    with torch.no_grad():
        for p, tp in zip(model.parameters(), tmodel.parameters()):
            tp.copy_(torch.from_numpy(p.data))
    x = rng.standard_normal((3, 3, 10, 10))
    labels = rng.integers(0, 5, 3)
    loss_fn, opt = nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    topt = torch.optim.SGD(tmodel.parameters(), lr=0.1, momentum=0.9)
    for _ in range(2):
        opt.zero_grad()
        loss = loss_fn(model(x), labels)
        model.backward(loss_fn.backward())
        opt.step()
        topt.zero_grad()
        tloss = torch.nn.functional.cross_entropy(tmodel(torch.from_numpy(x)),
                                                  torch.from_numpy(labels))
        tloss.backward()
        topt.step()
        np.testing.assert_allclose(loss, tloss.item(), rtol=1e-12)
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batchnorm3d_matches_torch(backend, dtype, rng, training):
    layer = nn.BatchNorm3d(3, momentum=0.2).to_dtype(dtype)
    layer.weight.data[:] = rng.uniform(0.5, 1.5, 3)
    layer.bias.data[:] = rng.standard_normal(3)
    layer.running_var[:] = rng.uniform(0.5, 2.0, 3)
    layer.train(training)
    x = (rng.standard_normal((2, 3, 4, 3, 5)) * 2 + 1).astype(dtype)
    check_against(layer, torch.nn.BatchNorm3d(3, momentum=0.2), x, rng, dtype)


def test_unflatten_is_a_view_and_inverts_flatten(rng):
    layer = nn.Unflatten(1, (3, -1))
    x = rng.standard_normal((2, 12)).astype(np.float32)
    y = layer.forward(x)
    assert y.shape == (2, 3, 4) == tuple(torch.nn.Unflatten(1, (3, -1))(torch.from_numpy(x)).shape)
    np.testing.assert_array_equal(y.reshape(2, 12), x)
    assert layer.backward(np.ones((2, 3, 4), np.float32)).shape == (2, 12)
    model = nn.Sequential(nn.Linear(6, 12), nn.Unflatten(-1, (2, 6)), nn.Flatten(),
                          nn.Linear(12, 1))
    assert model.forward(x[:, :6]).shape == (2, 1)
    assert model.backward(np.ones((2, 1), np.float32)).shape == (2, 6)


@pytest.mark.parametrize("make,shape,match", [
    (lambda: nn.Conv1d(3, 4, 3), (2, 2, 10), r"expected input of shape \(N, 3, L\)"),
    (lambda: nn.Conv1d(3, 4, 3), (2, 3, 4, 4), r"\(N, 3, L\) or \(3, L\)"),
    (lambda: nn.Conv1d(3, 4, 5), (2, 3, 4), "kernel size"),
    (lambda: nn.MaxPool1d(2), (6,), r"\(N, C, L\)"),
    (lambda: nn.BatchNorm3d(3), (2, 3, 4, 4), r"\(N, 3, D, H, W\)"),
    (lambda: nn.Unflatten(1, (3, 5)), (2, 12), "cannot split"),
])
def test_bad_inputs_are_refused(make, shape, match):
    with pytest.raises(ValueError, match=match):
        make().forward(np.zeros(shape, np.float32))


@pytest.mark.parametrize("make,match", [
    (lambda: nn.Conv1d(3, 4, (3, 3)), "kernel_size"),
    (lambda: nn.Conv1d(3, 4, 4, stride=2, padding="same"), "not supported for strided"),
    (lambda: nn.Conv1d(3, 4, 3, dilation=0), "dilation"),
    (lambda: nn.MaxPool1d(2, dilation=(1, 2)), "dilation"),
    (lambda: nn.MaxPool1d(2, padding=2), "at most half"),
    (lambda: nn.Unflatten(1, (-1, -1)), "unflattened_size"),
])
def test_bad_arguments_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_conv1d_state_dict_loads_from_torch(rng):
    twin = torch.nn.Conv1d(2, 3, 4)
    layer = nn.Conv1d(2, 3, 4)
    layer.load_state_dict({k: v.detach().numpy() for k, v in twin.state_dict().items()})
    x = rng.standard_normal((1, 2, 8)).astype(np.float32)
    assert_close(layer.forward(x), twin(torch.from_numpy(x)).detach().numpy(), np.float32, 10)
    assert fastnn.nn.Conv1d(2, 3, 4).weight.data.std() > 0


@pytest.mark.parametrize("cls", ["Softmax", "LogSoftmax", "Softmin"])
@pytest.mark.parametrize("shape,dim", [((7,), 0), ((7,), None), ((4, 6), 0), ((4, 6), None),
                                       ((2, 5, 3), 1), ((2, 5, 3), None), ((2, 5, 3), -1),
                                       ((2, 4, 3, 3), 1), ((2, 4, 3, 3), None),
                                       ((2, 4, 3, 3), -2)])
def test_softmax_over_any_axis_matches_torch(backend, dtype, rng, cls, shape, dim):
    """PyTorch's dim, the implicit choice of dim=None included (axis 0 of 1-D and 3-D
    inputs, 1 otherwise): outputs and gradients."""
    import warnings
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's warning on the implicit dim
        check_against(getattr(nn, cls)(dim=dim), getattr(torch.nn, cls)(dim=dim), x, rng,
                      dtype)
    assert repr(getattr(nn, cls)(dim=dim)) == repr(getattr(torch.nn, cls)(dim=dim))


def _loss_against_torch(ours, theirs, pred, target, dtype, rng):
    """Value and gradient of both losses (and backward(grad) for 'none')."""
    tp = torch.from_numpy(pred.copy()).requires_grad_(True)
    tl = theirs(tp, torch.from_numpy(target.copy()))
    got = ours(pred, target)
    if ours.reduction == "none":
        assert np.shape(got) == tuple(tl.shape)
        g = rng.uniform(0.5, 1.5, np.shape(got)).astype(dtype)
        tl.backward(torch.from_numpy(g))
        grad = ours.backward(g)
    else:
        tl.backward()
        grad = ours.backward()
    assert_close(got, tl.detach().numpy(), dtype, 10)
    assert grad.shape == pred.shape
    assert_close(grad, tp.grad.numpy(), dtype, 10)


FORMS = ["unbatched", "unbatched_probs", "2d_map", "1d_map", "map_probs"]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("loss,form", [(loss, form) for loss in ("ce", "ce_options", "nll")
                                       for form in FORMS
                                       if not (loss == "nll" and form.endswith("probs"))])
def test_class_losses_take_pytorchs_other_shapes(backend, dtype, rng, loss, reduction, form):
    """CrossEntropyLoss and NLLLoss (labels only, as PyTorch's) on one sample (C,) and on
    (N, C, d1, ..., dk) score maps, against PyTorch: loss, gradient, and backward(grad)
    for 'none'."""
    shape = {"unbatched": (5,), "unbatched_probs": (5,), "2d_map": (2, 5, 3, 4),
             "1d_map": (3, 5, 6), "map_probs": (2, 5, 3)}[form]
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    if form.endswith("probs"):
        target = rng.dirichlet(np.ones(5), size=math.prod(shape) // 5).astype(dtype)
        target = np.moveaxis(target.reshape(shape[:1] + shape[2:] + (5,)), -1, 1).copy() \
            if len(shape) > 1 else target.reshape(shape)
    else:
        target = rng.integers(0, 5, shape[:1] + shape[2:] if len(shape) > 1 else ())
        if loss != "ce" and target.ndim:
            target.reshape(-1)[0] = 3  # an ignored entry
    kwargs = dict(reduction=reduction)
    if loss == "ce_options":
        kwargs.update(weight=np.linspace(0.5, 2, 5), label_smoothing=0.1 if
                      form.endswith("probs") or target.ndim == 0 else 0.0)
        if not form.endswith("probs") and target.ndim:
            kwargs["ignore_index"] = 3
    if loss == "nll":
        kwargs["ignore_index"] = 3
        x = torch.log_softmax(torch.from_numpy(x), 1 if x.ndim > 1 else 0).numpy()
    ours = (nn.NLLLoss if loss == "nll" else nn.CrossEntropyLoss)(**kwargs)
    tkwargs = dict(kwargs)
    if "weight" in tkwargs:
        tkwargs["weight"] = torch.from_numpy(tkwargs["weight"].astype(dtype))
    theirs = (torch.nn.NLLLoss if loss == "nll" else torch.nn.CrossEntropyLoss)(**tkwargs)
    _loss_against_torch(ours, theirs, x, np.asarray(target), dtype, rng)


def test_class_losses_check_the_other_shapes(rng):
    x = rng.standard_normal((2, 5, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=r"expected labels of shape \(2, 3\) for logits of "
                                         r"shape \(2, 5, 3\), got \(2, 5\)"):
        nn.CrossEntropyLoss()(x, np.zeros((2, 5), np.int64))
    with pytest.raises(ValueError, match=r"expected labels of shape \(\)"):
        nn.CrossEntropyLoss()(x[0, :, 0].copy(), np.zeros(2, np.int64))
    loss = nn.CrossEntropyLoss(reduction="none")
    loss(x, np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match=r"expected grad of shape \(2, 3\)"):
        loss.backward(np.ones(6, np.float32))
    assert nn.CrossEntropyLoss()(x[0, :, 0].copy(), 2) == pytest.approx(
        torch.nn.functional.cross_entropy(torch.from_numpy(x[0, :, 0].copy()),
                                          torch.tensor(2)).item(), rel=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("loss", ["ce", "ce_options", "nll"])
def test_one_samples_label_may_be_of_shape_1(dtype, rng, loss, reduction):
    """PyTorch's forward takes logits (C,) with a label (1,) as with a label () (a 0-d loss,
    'none' too), F's and the classes'; its backward then fails ("size mismatch"), fastnn's
    gives the label ()'s gradient."""
    x = rng.standard_normal(5).astype(dtype)
    kwargs = dict(reduction=reduction)
    if loss == "ce_options":
        kwargs.update(weight=np.linspace(0.5, 2, 5).astype(dtype), ignore_index=3)
    tkwargs = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
               for k, v in kwargs.items()}
    if loss == "nll":
        x = torch.log_softmax(torch.from_numpy(x), 0).numpy()
    ours = (nn.NLLLoss if loss == "nll" else nn.CrossEntropyLoss)(**kwargs)
    theirs = (torch.nn.NLLLoss if loss == "nll" else torch.nn.CrossEntropyLoss)(**tkwargs)
    functional = getattr(fastnn.nn.functional, "nll_loss" if loss == "nll" else "cross_entropy")
    for label in (1, 3):   # (3: ignored by ce_options)
        target = np.array([label])
        with torch.no_grad():
            expected = theirs(torch.from_numpy(x), torch.from_numpy(target)).numpy()
        got = ours(x, target)
        assert np.shape(got) == () == expected.shape
        assert_close(got, expected, dtype, 10)
        g = np.asarray(rng.uniform(0.5, 1.5), dtype) if reduction == "none" else None
        grad = ours.backward(g)
        tp = torch.from_numpy(x.copy()).requires_grad_(True)
        theirs(tp, torch.tensor(label)).backward(None if g is None else torch.from_numpy(g))
        assert grad.shape == x.shape
        assert_close(grad, tp.grad.numpy(), dtype, 10)
        value = functional(x, target, **kwargs)
        assert np.shape(value) == ()
        assert_close(value, expected, dtype, 10)


def test_one_samples_label_of_another_shape_stays_an_error(rng):
    # PyTorch refuses labels (2,) and (1, 1) for logits (C,), and (1,) with label
    # smoothing (its smoothing term's shape () against (1,)); fastnn too
    x = rng.standard_normal(5).astype(np.float32)
    w = rng.standard_normal((5, 3)).astype(np.float32)
    F, TF = fastnn.nn.functional, torch.nn.functional
    for target, kwargs in ((np.zeros(2, np.int64), {}), (np.zeros((1, 1), np.int64), {}),
                           (np.zeros(1, np.int64), dict(label_smoothing=0.1))):
        t = torch.from_numpy(target)
        with pytest.raises((RuntimeError, ValueError)):
            TF.cross_entropy(torch.from_numpy(x), t, **kwargs)
        with pytest.raises((RuntimeError, ValueError)):
            TF.linear_cross_entropy(torch.from_numpy(x[:3]), torch.from_numpy(w), t, **kwargs)
        with pytest.raises(ValueError, match="shape"):
            nn.CrossEntropyLoss(**kwargs)(x, target)
        with pytest.raises(ValueError, match="size|shape"):
            F.cross_entropy(x, target, **kwargs)
        with pytest.raises(ValueError, match="shape"):
            F.linear_cross_entropy(x[:3], w, target, **kwargs)
        if not kwargs:
            with pytest.raises(ValueError, match="shape"):
                nn.NLLLoss()(x, target)
            with pytest.raises(ValueError, match="size"):
                F.nll_loss(x, target)
    # without smoothing, linear_cross_entropy takes the label (1,) as PyTorch's forward
    got = F.linear_cross_entropy(x[:3], w, np.array([2]), reduction="none")
    expected = TF.linear_cross_entropy(torch.from_numpy(x[:3]), torch.from_numpy(w),
                                       torch.tensor([2]), reduction="none")
    assert np.shape(got) == () == tuple(expected.shape)
    assert_close(got, expected.numpy(), np.float32, 10)


@pytest.mark.parametrize("shape,normalized,kwargs", [
    ((4, 10), 10, {}), ((3, 5, 8), (8,), {}), ((2, 3, 4, 5), (4, 5), {}),
    ((6, 7), 7, dict(elementwise_affine=False)), ((5, 9), 9, dict(bias=False, eps=1e-3)),
    ((9,), 9, {}),
], ids=["rows", "sequence", "two-dims", "no-affine", "no-bias", "one-sample"])
def test_layernorm_matches_torch(backend, dtype, rng, shape, normalized, kwargs):
    layer = nn.LayerNorm(normalized, **kwargs).to_dtype(dtype)
    for p in layer.parameters():
        p.data[...] = rng.uniform(0.5, 1.5, p.shape)
    x = (rng.standard_normal(shape) * 2 + 0.5).astype(dtype)
    check_against(layer, torch.nn.LayerNorm(normalized, **kwargs), x, rng, dtype)
    assert repr(layer) == repr(torch.nn.LayerNorm(normalized, **kwargs))


def test_layernorm_in_a_model_trains_like_torch(rng):
    """A Linear-LayerNorm-GELU MLP, three Adam steps, in float64: the same parameters as
    the torch twin."""
    model = nn.Sequential(nn.Linear(6, 16), nn.LayerNorm(16), nn.GELU(), nn.Linear(16, 3)).double()
    twin = torch_copy(model, torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.LayerNorm(16),
                                                 torch.nn.GELU(), torch.nn.Linear(16, 3)).double())
    opt = fastnn.optim.Adam(model.parameters(), lr=0.01)
    topt = torch.optim.Adam(twin.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(3):
        x = rng.standard_normal((8, 6))
        y = rng.integers(0, 3, 8)
        opt.zero_grad()
        topt.zero_grad()
        loss_fn(model(x), y)
        model.backward(loss_fn.backward())
        torch.nn.functional.cross_entropy(twin(torch.from_numpy(x)),
                                          torch.from_numpy(y)).backward()
        opt.step()
        topt.step()
    for name, p in twin.state_dict().items():
        np.testing.assert_allclose(model.state_dict()[name], p.numpy(), rtol=1e-9, atol=1e-12)


def test_layernorm_bad_input_and_arguments():
    with pytest.raises(ValueError, match=r"expected input of shape \(\*, 4, 5\), got \(2, 5, 4\)"):
        nn.LayerNorm((4, 5))(np.zeros((2, 5, 4), np.float32))
    with pytest.raises(TypeError, match="does not match the layer's parameters"):
        nn.LayerNorm(3)(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="normalized_shape"):
        nn.LayerNorm(-1)
    with pytest.raises(ValueError, match="eps"):
        nn.LayerNorm(3, eps=-1.0)


@pytest.mark.parametrize("size,shape", [(1, (2, 3, 8, 6)), ((2, 3), (2, 3, 8, 6)),
                                        ((3, 4), (2, 3, 8, 6)), ((5, None), (1, 2, 7, 9)),
                                        ((4, 4), (3, 5, 5)), (7, (1, 2, 14, 14))],
                         ids=["global", "divides", "overlapping", "none-keeps", "unbatched",
                              "vgg-7x7"])
def test_adaptive_avg_pool2d_matches_torch(backend, dtype, rng, size, shape):
    """Output sizes that divide the input (the avg_pool2d kernels) and ones that do not
    (overlapping windows of two lengths), against PyTorch."""
    layer = nn.AdaptiveAvgPool2d(size)
    check_against(layer, torch.nn.AdaptiveAvgPool2d(size),
                  rng.standard_normal(shape).astype(dtype), rng, dtype)
    assert repr(layer) == repr(torch.nn.AdaptiveAvgPool2d(size))


@pytest.mark.parametrize("size,shape", [(1, (2, 3, 10)), (4, (2, 3, 10)), (3, (3, 9))])
def test_adaptive_avg_pool1d_matches_torch(backend, dtype, rng, size, shape):
    check_against(nn.AdaptiveAvgPool1d(size), torch.nn.AdaptiveAvgPool1d(size),
                  rng.standard_normal(shape).astype(dtype), rng, dtype)


def test_adaptive_pool_in_a_vgg_head(rng):
    """conv -> AdaptiveAvgPool2d((2, 2)) -> Flatten -> Linear on two input sizes, as
    torchvision's VGG head takes any image size."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d((2, 2)),
                          nn.Flatten(), nn.Linear(16, 5))
    twin = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.AdaptiveAvgPool2d((2, 2)), torch.nn.Flatten(),
                               torch.nn.Linear(16, 5))
    for hw in ((8, 8), (7, 9)):
        check_against(model, twin, rng.standard_normal((2, 3) + hw).astype(np.float32), rng,
                      np.dtype(np.float32))
    with pytest.raises(ValueError, match="output_size"):
        nn.AdaptiveAvgPool2d(-1)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        nn.AdaptiveAvgPool2d(2)(np.zeros((4, 4), np.float32))


@pytest.mark.parametrize("args", [
    dict(in_channels=3, out_channels=4, kernel_size=3),
    dict(in_channels=2, out_channels=3, kernel_size=4, stride=2, padding=1),
    dict(in_channels=2, out_channels=3, kernel_size=3, stride=2, padding=1, output_padding=1),
    dict(in_channels=2, out_channels=2, kernel_size=(2, 3), stride=(3, 1), padding=(2, 0),
         bias=False),
    dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1, output_padding=1,
         groups=2),
    dict(in_channels=2, out_channels=3, kernel_size=3, dilation=2),
    dict(in_channels=3, out_channels=6, kernel_size=(3, 2), stride=(3, 2), padding=(2, 1),
         dilation=(2, 3), output_padding=(1, 2), groups=3, bias=False),
    dict(in_channels=4, out_channels=4, kernel_size=3, stride=2, groups=4),
], ids=["k3", "k4s2p1", "output-padding", "crop-border", "groups", "dilation",
        "groups-dilation-output-padding", "depthwise"])
def test_conv_transpose2d_matches_torch(backend, dtype, rng, args):
    """Outputs, input and parameter gradients (the weight's through the flipped kernel)."""
    layer = nn.ConvTranspose2d(**args).to_dtype(dtype)
    x = rng.standard_normal((2, args["in_channels"], 5, 6)).astype(dtype)
    check_against(layer, torch.nn.ConvTranspose2d(**args), x, rng, dtype,
                  math.sqrt(layer.weight.data[:, 0].size) * 10)
    assert repr(layer) == repr(torch.nn.ConvTranspose2d(**args))


def test_conv_transpose2d_decoder_unbatched_and_init(rng):
    """A small decoder (Linear -> Unflatten -> ConvTranspose2d x2) doubling the image
    twice, an unbatched input, and PyTorch's initial weight bound 1/sqrt(out * kH * kW)."""
    decoder = nn.Sequential(nn.Linear(4, 8 * 3 * 3), nn.Unflatten(1, (8, 3, 3)), nn.ReLU(),
                            nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1), nn.ReLU(),
                            nn.ConvTranspose2d(4, 1, 4, stride=2, padding=1), nn.Sigmoid())
    twin = torch.nn.Sequential(torch.nn.Linear(4, 72), torch.nn.Unflatten(1, (8, 3, 3)),
                               torch.nn.ReLU(), torch.nn.ConvTranspose2d(8, 4, 4, 2, 1),
                               torch.nn.ReLU(), torch.nn.ConvTranspose2d(4, 1, 4, 2, 1),
                               torch.nn.Sigmoid())
    check_against(decoder, twin, rng.standard_normal((3, 4)).astype(np.float32), rng,
                  np.dtype(np.float32))
    assert decoder.forward(rng.standard_normal((2, 4)).astype(np.float32)).shape == (2, 1, 12, 12)
    one = nn.ConvTranspose2d(3, 2, 3, stride=2)
    check_against(one, torch.nn.ConvTranspose2d(3, 2, 3, stride=2),
                  rng.standard_normal((3, 4, 4)).astype(np.float32), rng, np.dtype(np.float32))
    big = nn.ConvTranspose2d(64, 32, 3)
    bound = 1 / math.sqrt(32 * 9)
    assert big.weight.shape == (64, 32, 3, 3)
    assert np.abs(big.weight.data).max() <= bound and np.abs(big.weight.data).max() > 0.9 * bound
    state = fastnn.random.get_state()
    grouped = nn.ConvTranspose2d(64, 32, 3, groups=4, dilation=2)
    bound = 1 / math.sqrt(8 * 9)
    assert grouped.weight.shape == (64, 8, 3, 3)
    assert np.abs(grouped.weight.data).max() <= bound
    grouped(rng.standard_normal((1, 64, 4, 4)).astype(np.float32))
    fastnn.random.set_state(state)
    again = nn.ConvTranspose2d(64, 32, 3, groups=4, dilation=2)  # the forward drew nothing
    np.testing.assert_array_equal(again.weight.data, grouped.weight.data)


def test_conv_transpose2d_bad_arguments_and_inputs():
    layer = nn.ConvTranspose2d(2, 2, 3, stride=2, output_padding=2)  # built, as PyTorch's
    with pytest.raises(ValueError, match="output padding must be smaller"):
        layer(np.zeros((1, 2, 4, 4), np.float32))
    assert layer(np.zeros((1, 2, 4, 4), np.float32), output_size=(10, 10)).shape == (
        1, 2, 10, 10)   # (output_size gives its own padding)
    with pytest.raises(ValueError, match=r"in_channels \(2\) and out_channels \(3\) must be "
                                         r"divisible by groups \(2\)"):
        nn.ConvTranspose2d(2, 3, 3, groups=2)
    with pytest.raises(ValueError, match="expected dilation to be an int >= 1"):
        nn.ConvTranspose2d(2, 2, 3, dilation=0)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 2, H, W\)"):
        nn.ConvTranspose2d(2, 2, 3)(np.zeros((1, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="would have size"):
        nn.ConvTranspose2d(2, 2, 1, padding=3)(np.zeros((1, 2, 2, 2), np.float32))


@pytest.mark.parametrize("cls,shape", [(nn.Dropout1d, (4, 6, 5)), (nn.Dropout1d, (6, 5)),
                                       (nn.Dropout2d, (4, 6, 3, 3)), (nn.Dropout2d, (4, 6, 5)),
                                       (nn.Dropout3d, (2, 6, 2, 2, 2)),
                                       (nn.Dropout3d, (6, 2, 2, 2))])
def test_channel_dropout_zeroes_whole_channels(backend, cls, shape):
    """Every (sample, channel) is all zeros or all x / (1 - p), about a fraction p of
    them zero; backward uses the same mask; eval mode and p = 0 are the identity."""
    fastnn.manual_seed(3)
    layer = cls(0.4)
    x = np.ones(shape, np.float32)
    y = layer.forward(x)
    lead = 2 if len(shape) == {nn.Dropout1d: 3, nn.Dropout2d: 4, nn.Dropout3d: 5}[cls] \
        or (cls is nn.Dropout2d and len(shape) == 3) else 1
    flat = y.reshape(math.prod(shape[:lead]), -1)
    assert np.all((flat == 0).all(axis=1) | np.isclose(flat, 1 / 0.6).all(axis=1))
    np.testing.assert_array_equal(layer.backward(np.ones(shape, np.float32)), y)
    assert layer.eval().forward(x) is not None
    np.testing.assert_array_equal(layer.forward(x), x)
    assert 0 < (flat == 0).all(axis=1).sum() < flat.shape[0] or flat.shape[0] < 8


def test_channel_dropout_rate_and_torch_layout():
    """About p of the channels dropped over many draws; the layer keeps PyTorch's repr."""
    fastnn.manual_seed(0)
    layer = nn.Dropout2d(0.3)
    y = layer.forward(np.ones((200, 50, 2, 2), np.float32))
    dropped = (y[:, :, 0, 0] == 0).mean()
    assert abs(dropped - 0.3) < 0.02
    assert repr(layer) == repr(torch.nn.Dropout2d(0.3))
    # another rank is PyTorch's deprecated unbatched read, with its warning
    with pytest.warns(UserWarning, match="Received a 2-D input to dropout3d"):
        assert nn.Dropout3d(0.5).forward(np.ones((2, 3), np.float32)).shape == (2, 3)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", ["weight", "pos_weight", "both"])
def test_bce_with_logits_weights_match_torch(backend, dtype, rng, reduction, options):
    logits = (rng.standard_normal((6, 4)) * 4).astype(dtype)
    target = rng.uniform(0, 1, (6, 4)).astype(dtype)
    kwargs = dict(reduction=reduction)
    if options in ("weight", "both"):
        kwargs["weight"] = rng.uniform(0.5, 2.0, (6, 1))
    if options in ("pos_weight", "both"):
        kwargs["pos_weight"] = rng.uniform(0.5, 3.0, 4)
    tkwargs = {k: (torch.from_numpy(v.astype(dtype)) if isinstance(v, np.ndarray) else v)
               for k, v in kwargs.items()}
    _loss_against_torch(nn.BCEWithLogitsLoss(**kwargs), torch.nn.BCEWithLogitsLoss(**tkwargs),
                        logits, target, dtype, rng)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_weight_matches_torch(backend, dtype, rng, reduction):
    pred = rng.uniform(0.01, 0.99, (5, 3)).astype(dtype)
    target = (rng.uniform(0, 1, (5, 3)) > 0.5).astype(dtype)
    weight = rng.uniform(0.5, 2.0, 3)
    _loss_against_torch(nn.BCELoss(weight=weight, reduction=reduction),
                        torch.nn.BCELoss(weight=torch.from_numpy(weight.astype(dtype)),
                                         reduction=reduction), pred, target, dtype, rng)


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides")  # torch's note on 'mean'
@pytest.mark.parametrize("reduction", ["mean", "batchmean", "sum", "none"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_matches_torch(backend, dtype, rng, reduction, log_target):
    """A distillation loss: log-softmax of the student against the teacher's
    probabilities (one of them exactly 0, whose term is 0, as PyTorch's xlogy)."""
    logp = torch.log_softmax(torch.from_numpy(rng.standard_normal((4, 5)).astype(dtype)),
                             1).numpy()
    q = torch.softmax(torch.from_numpy(rng.standard_normal((4, 5)).astype(dtype)), 1).numpy()
    q[0, 0] = 0
    target = np.log(q + (q == 0)) if log_target else q
    _loss_against_torch(nn.KLDivLoss(reduction=reduction, log_target=log_target),
                        torch.nn.KLDivLoss(reduction=reduction, log_target=log_target),
                        logp, target.astype(dtype), dtype, rng)


def test_weighted_losses_check_their_options():
    with pytest.raises(ValueError, match="does not broadcast"):
        nn.BCEWithLogitsLoss(weight=np.ones(3))(np.zeros((2, 4), np.float32),
                                                np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match="pos_weight to be a numeric array"):
        nn.BCEWithLogitsLoss(pos_weight=["a"])
    assert nn.KLDivLoss(reduction="batchmean").reduction == "batchmean"
    with pytest.raises(ValueError, match="reduction"):
        nn.KLDivLoss(reduction="avg")


@pytest.mark.parametrize("num,shape", [(1, (4, 6)), (1, (2, 3, 4, 4)), (3, (2, 3, 4, 4)),
                                       (5, (4, 5)), (1, (7,))],
                         ids=["one-2d", "one-4d", "channels-4d", "channels-2d", "one-1d"])
def test_prelu_matches_torch(backend, dtype, rng, num, shape):
    """Outputs, input gradients and the slopes' gradient; several slopes need a channel
    axis, as PyTorch's."""
    layer = nn.PReLU(num, init=0.2).to_dtype(dtype)
    check_against(layer, torch.nn.PReLU(num, init=0.2), rng.standard_normal(shape).astype(dtype),
                  rng, dtype)
    assert repr(layer) == repr(torch.nn.PReLU(num))
    if num > 1:
        with pytest.raises(ValueError, match=f"expected {num} channels on axis 1"):
            layer.forward(np.zeros((num,), dtype))


@pytest.mark.parametrize("kwargs,shape", [(dict(scale_factor=2), (2, 3, 4, 5)),
                                          (dict(size=(8, 15)), (2, 3, 4, 5)),
                                          (dict(scale_factor=1.5), (1, 2, 5, 4)),
                                          (dict(size=(7, 9)), (1, 2, 3, 4)),
                                          (dict(scale_factor=3), (2, 3, 4)),
                                          (dict(scale_factor=(2, 3)), (1, 2, 2, 2))],
                         ids=["x2", "size-multiple", "x1.5", "size-other", "1d-x3", "x2x3"])
def test_upsample_nearest_matches_torch(backend, dtype, rng, kwargs, shape):
    layer = nn.Upsample(**kwargs)
    check_against(layer, torch.nn.Upsample(**kwargs), rng.standard_normal(shape).astype(dtype),
                  rng, dtype)
    assert repr(layer) == repr(torch.nn.Upsample(**kwargs))


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("kwargs,shape", [(dict(scale_factor=2, mode="bilinear"), (2, 3, 4, 5)),
                                          (dict(size=(7, 9), mode="bilinear"), (1, 2, 3, 4)),
                                          (dict(scale_factor=1.5, mode="bilinear"), (1, 2, 5, 4)),
                                          (dict(size=(3, 2), mode="bilinear"), (1, 2, 5, 4)),
                                          (dict(scale_factor=(2, 3), mode="bilinear"),
                                           (1, 2, 1, 2)),
                                          (dict(scale_factor=3, mode="linear"), (2, 3, 4)),
                                          (dict(size=1, mode="linear"), (2, 3, 4))],
                         ids=["x2", "size-other", "x1.5", "shrink", "x2x3-from-1-row", "1d-x3",
                              "1d-to-1"])
def test_upsample_linear_modes_match_torch(backend, dtype, rng, kwargs, shape, align_corners):
    """PyTorch's source coordinates (half-pixel without align_corners, corners with it;
    1 / scale_factor when a factor is given), forward and backward."""
    kwargs = dict(kwargs, align_corners=align_corners)
    layer = nn.Upsample(**kwargs)
    check_against(layer, torch.nn.Upsample(**kwargs), rng.standard_normal(shape).astype(dtype),
                  rng, dtype)
    assert repr(layer) == repr(torch.nn.Upsample(**kwargs))


def test_upsampling_bilinear2d_in_a_unet_style_decoder(rng):
    x = rng.standard_normal((2, 3, 5, 6)).astype(np.float32)
    ours = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(),
                         nn.UpsamplingBilinear2d(scale_factor=2), nn.Conv2d(4, 2, 1))
    twin = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.UpsamplingBilinear2d(scale_factor=2),
                               torch.nn.Conv2d(4, 2, 1))
    check_against(ours, twin, x, rng, np.dtype(np.float32))
    assert repr(ours[2]) == repr(twin[2])


def test_upsample_decoder_and_bad_arguments(rng):
    decoder = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(2, 3, 3, padding=1),
                            nn.ReLU(), nn.UpsamplingNearest2d(scale_factor=2))
    twin = torch.nn.Sequential(torch.nn.Upsample(scale_factor=2),
                               torch.nn.Conv2d(2, 3, 3, padding=1), torch.nn.ReLU(),
                               torch.nn.UpsamplingNearest2d(scale_factor=2))
    check_against(decoder, twin, rng.standard_normal((2, 2, 3, 3)).astype(np.float32), rng,
                  np.dtype(np.float32))
    with pytest.raises(ValueError, match="mode"):
        nn.Upsample(scale_factor=2, mode="cubic")
    with pytest.raises(ValueError, match="mode 'bilinear' expects a 4-D input"):
        nn.Upsample(scale_factor=2, mode="bilinear")(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="mode 'linear' expects a 3-D input"):
        nn.Upsample(scale_factor=2, mode="linear")(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="align_corners"):
        nn.Upsample(scale_factor=2, align_corners=True)
    with pytest.raises(ValueError, match="exactly one of size and scale_factor"):
        nn.Upsample()
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        nn.Upsample(scale_factor=2)(np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("padding_idx", [None, 0, -1])
def test_embedding_matches_torch(backend, dtype, rng, padding_idx):
    """Rows looked up, gradients added per index (repeats included), the padding row's
    gradient kept at zero, PyTorch's init and repr."""
    layer = nn.Embedding(10, 4, padding_idx=padding_idx).to_dtype(dtype)
    twin = torch_copy(layer, torch.nn.Embedding(10, 4, padding_idx=padding_idx).to(
        TORCH_DTYPES[np.dtype(dtype)]))
    idx = np.array([[1, 0, 3, 3], [9, 9, 1, 0]])
    y = layer.forward(idx)
    yt = twin(torch.from_numpy(idx))
    g = rng.standard_normal(y.shape).astype(dtype)
    yt.backward(torch.from_numpy(g))
    assert layer.backward(g) is None and y.dtype == dtype
    assert_close(y, yt.detach().numpy(), dtype)
    assert_close(layer.weight.grad, twin.weight.grad.numpy(), dtype)
    assert repr(layer) == repr(twin)
    if padding_idx is not None:
        assert not layer.weight.data[padding_idx].any()


def test_embedding_in_a_model_and_from_pretrained(rng):
    """A bag-of-words classifier: Embedding first in a Sequential (indices in, floats on),
    trained one SGD step as torch's; from_pretrained freezes the table by default."""
    model = nn.Sequential(nn.Embedding(20, 5), nn.Flatten(), nn.Linear(15, 3))
    twin = torch_copy(model, torch.nn.Sequential(torch.nn.Embedding(20, 5), torch.nn.Flatten(),
                                                 torch.nn.Linear(15, 3)))
    idx, labels = rng.integers(0, 20, (4, 3)), rng.integers(0, 3, 4)
    opt, topt = fastnn.optim.SGD(model.parameters(), lr=0.5), torch.optim.SGD(
        twin.parameters(), lr=0.5)
    loss_fn = nn.CrossEntropyLoss()
    loss_fn(model(idx), labels)
    assert model.backward(loss_fn.backward()) is None
    torch.nn.functional.cross_entropy(twin(torch.from_numpy(idx)),
                                      torch.from_numpy(labels)).backward()
    opt.step()
    topt.step()
    for name, p in twin.state_dict().items():
        assert_close(model.state_dict()[name], p.numpy(), np.dtype(np.float32), err_msg=name)
    table = rng.standard_normal((6, 2)).astype(np.float32)
    frozen = nn.Embedding.from_pretrained(table)
    assert not frozen.weight.requires_grad
    np.testing.assert_array_equal(frozen.forward(np.array([5, 0])), table[[5, 0]])
    with pytest.raises(TypeError, match="expected integer indices"):
        model(np.zeros((2, 3), np.float32))
    with pytest.raises(IndexError, match="out of range"):
        frozen.forward(np.array([6]))
    with pytest.raises(ValueError, match="sparse"):   # (max_norm: tests/test_probe_seq.py)
        nn.Embedding(3, 2, sparse=True)


@pytest.mark.parametrize("make, twin, shape", [
    (lambda: nn.GroupNorm(2, 6), lambda: torch.nn.GroupNorm(2, 6), (3, 6, 4, 5)),
    (lambda: nn.GroupNorm(3, 6, affine=False), lambda: torch.nn.GroupNorm(3, 6, affine=False),
     (2, 6, 7)),
    (lambda: nn.GroupNorm(1, 4, eps=1e-3), lambda: torch.nn.GroupNorm(1, 4, eps=1e-3), (5, 4)),
    (lambda: nn.InstanceNorm2d(3), lambda: torch.nn.InstanceNorm2d(3), (2, 3, 5, 4)),
    (lambda: nn.InstanceNorm2d(3, affine=True), lambda: torch.nn.InstanceNorm2d(3, affine=True),
     (2, 3, 5, 4)),
    (lambda: nn.InstanceNorm2d(3, affine=True), lambda: torch.nn.InstanceNorm2d(3, affine=True),
     (3, 5, 4)),
    (lambda: nn.InstanceNorm1d(4, affine=True), lambda: torch.nn.InstanceNorm1d(4, affine=True),
     (3, 4, 9)),
    (lambda: nn.InstanceNorm3d(2), lambda: torch.nn.InstanceNorm3d(2), (2, 2, 3, 4, 3)),
    (lambda: nn.GroupNorm(2, 4, bias=False), lambda: torch.nn.GroupNorm(2, 4, bias=False),
     (2, 4, 3)),
], ids=["group2", "group3-noaffine", "group1-2d", "instance2d", "instance2d-affine",
        "instance2d-unbatched", "instance1d-affine", "instance3d", "group-nobias"])
def test_group_and_instance_norm_match_torch(backend, dtype, rng, make, twin, shape):
    """Forward, input gradient and the per-channel weight and bias gradients (after a
    random weight and bias, so the affine part is exercised), in train and eval mode."""
    layer = make().to_dtype(dtype)
    for p in layer.parameters():
        p.data[...] = rng.standard_normal(p.shape).astype(dtype)
    x = (rng.standard_normal(shape) * 3 + 1).astype(dtype)
    check_against(layer, twin(), x, rng, dtype)
    layer.eval().zero_grad()
    check_against(layer, twin(), x, rng, dtype)
    assert repr(layer) == repr(twin())


def test_group_norm_in_a_cnn_trains_like_torch(rng):
    x = rng.standard_normal((4, 3, 6, 6)).astype(np.float32)
    ours = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(4, 8), nn.ReLU(),
                         nn.InstanceNorm2d(8, affine=True), nn.Flatten(), nn.Linear(288, 2))
    twin = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.GroupNorm(4, 8),
                               torch.nn.ReLU(), torch.nn.InstanceNorm2d(8, affine=True),
                               torch.nn.Flatten(), torch.nn.Linear(288, 2))
    check_against(ours, twin, x, rng, np.dtype(np.float32))


@pytest.mark.parametrize("cls, shape", [("InstanceNorm1d", (3, 4, 7)),
                                        ("InstanceNorm2d", (2, 3, 4, 5)),
                                        ("InstanceNorm2d", (3, 4, 5)),
                                        ("InstanceNorm3d", (2, 3, 2, 3, 4))])
@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("momentum", [0.1, 0.5, None])
def test_instance_norm_running_statistics_match_torch(dtype, rng, cls, shape, affine,
                                                      momentum):
    """track_running_stats=True: three training steps move the running statistics as
    PyTorch's (momentum None leaves them), then eval mode normalises with them; outputs,
    input and parameter gradients, buffers and repr."""
    batched = len(shape) == int(cls[-2]) + 2
    channels = shape[1 if batched else 0]
    twin = getattr(torch.nn, cls)(channels, affine=affine, momentum=momentum,
                                  track_running_stats=True).to(TORCH_DTYPES[dtype])
    ours = getattr(nn, cls)(channels, affine=affine, momentum=momentum,
                            track_running_stats=True, dtype=dtype)
    assert repr(ours) == repr(twin)
    if affine:
        with torch.no_grad():
            twin.weight.uniform_(0.5, 1.5)
            twin.bias.uniform_(-0.5, 0.5)
    ours.load_state_dict({k: v.numpy().copy() for k, v in twin.state_dict().items()
                          if not k.endswith("num_batches_tracked")})
    for mode in ("train", "train", "train", "eval"):
        twin.train(mode == "train")
        ours.train(mode == "train")
        twin.zero_grad()
        ours.zero_grad()
        x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
        tx = torch.from_numpy(x.copy()).requires_grad_(True)
        ty = twin(tx)
        g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
        ty.backward(torch.from_numpy(g))
        y = ours(x)
        grad = ours.backward(g)
        assert_close(y, ty.detach().numpy(), dtype, err_msg=mode)
        assert_close(grad, tx.grad.numpy(), dtype, err_msg=mode)
        if affine:
            assert_close(ours.weight.grad, twin.weight.grad.numpy(), dtype, 30)
            assert_close(ours.bias.grad, twin.bias.grad.numpy(), dtype, 30)
        assert_close(ours.running_mean, twin.running_mean.numpy(), dtype)
        assert_close(ours.running_var, twin.running_var.numpy(), dtype)


def test_group_and_instance_norm_check_arguments_and_inputs():
    with pytest.raises(ValueError, match="divisible by num_groups"):
        nn.GroupNorm(4, 6)
    with pytest.raises(ValueError, match="num_groups to be a positive int"):
        nn.GroupNorm(0, 6)
    with pytest.raises(TypeError, match="track_running_stats"):
        nn.InstanceNorm2d(3, track_running_stats="yes")
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 6, \*\)"):
        nn.GroupNorm(2, 6)(np.zeros((2, 4, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\) or \(3, H, W\)"):
        nn.InstanceNorm2d(3, affine=True)(np.zeros((2, 3, 4), np.float32))
    with pytest.raises(TypeError, match="does not match"):
        nn.GroupNorm(2, 6)(np.zeros((2, 6, 3)))


@pytest.mark.parametrize("pool, tpool, unpool, tunpool, shape", [
    (lambda: nn.MaxPool2d(2, return_indices=True),
     lambda: torch.nn.MaxPool2d(2, return_indices=True),
     lambda: nn.MaxUnpool2d(2), lambda: torch.nn.MaxUnpool2d(2), (2, 3, 6, 8)),
    (lambda: nn.MaxPool2d(3, 2, 1, return_indices=True),
     lambda: torch.nn.MaxPool2d(3, 2, 1, return_indices=True),
     lambda: nn.MaxUnpool2d(3, 2, 1), lambda: torch.nn.MaxUnpool2d(3, 2, 1), (3, 7, 7)),
    (lambda: nn.MaxPool1d(2, return_indices=True),
     lambda: torch.nn.MaxPool1d(2, return_indices=True),
     lambda: nn.MaxUnpool1d(2), lambda: torch.nn.MaxUnpool1d(2), (2, 3, 10)),
], ids=["2d", "2d-k3s2p1-unbatched", "1d"])
def test_max_pool_indices_and_unpool_match_torch(backend, dtype, rng, pool, tpool, unpool,
                                                 tunpool, shape):
    """PyTorch's flat indices, the unpooled map with and without output_size, and both
    layers' backward (the pool's as usual, the unpool's a gather)."""
    x = rng.standard_normal(shape).astype(dtype)
    ours, theirs = pool(), tpool()
    y, idx = ours(x)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty, tidx = theirs(tx)
    np.testing.assert_array_equal(idx, tidx.numpy())
    assert idx.dtype == np.int64 and y.shape == idx.shape
    assert_close(y, ty.detach().numpy(), dtype)
    for size in (None, shape[len(shape) - unpool().dims:]):
        up, tup = unpool(), tunpool()
        z = up(y, idx) if size is None else up(y, idx, output_size=size)
        ty_leaf = ty.detach().clone().requires_grad_(True)
        tz = tup(ty_leaf, tidx) if size is None else tup(ty_leaf, tidx, output_size=size)
        assert_close(z, tz.detach().numpy(), dtype)
        g = rng.standard_normal(z.shape).astype(dtype)
        tz.backward(torch.from_numpy(g))
        assert_close(up.backward(g), ty_leaf.grad.numpy(), dtype)
        assert repr(up) == repr(tup)
    gy = rng.standard_normal(y.shape).astype(dtype)
    ty.backward(torch.from_numpy(gy))
    assert_close(ours.backward(gy), tx.grad.numpy(), dtype)


def test_segnet_style_encoder_decoder_with_indices(rng):
    """A user Module pooling with indices and unpooling with them, forward and backward
    written out, against the same network in torch."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 3, padding=1)
            self.pool = nn.MaxPool2d(2, return_indices=True)
            self.unpool = nn.MaxUnpool2d(2)
            self.out = nn.Conv2d(4, 1, 1)

        def forward(self, x):
            y, self.idx = self.pool(self.conv(x))
            return self.out(self.unpool(y, self.idx))

        def backward(self, g):
            g = self.unpool.backward(self.out.backward(g))
            return self.conv.backward(self.pool.backward(g))

    net = Net()
    conv, out = torch.nn.Conv2d(2, 4, 3, padding=1), torch.nn.Conv2d(4, 1, 1)
    for ours, theirs in ((net.conv, conv), (net.out, out)):
        torch_copy(ours, theirs)
    x = rng.standard_normal((2, 2, 6, 6)).astype(np.float32)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty, tidx = torch.nn.MaxPool2d(2, return_indices=True)(conv(tx))
    tz = out(torch.nn.MaxUnpool2d(2)(ty, tidx))
    g = rng.standard_normal(tuple(tz.shape)).astype(np.float32)
    tz.backward(torch.from_numpy(g))
    z = net(x)
    assert_close(z, tz.detach().numpy(), np.float32)
    assert_close(net.backward(g), tx.grad.numpy(), np.float32)
    assert_close(net.conv.weight.grad, conv.weight.grad.numpy(), np.float32, 10)


def test_unpool_checks_its_indices():
    y, idx = nn.MaxPool2d(2, return_indices=True)(np.ones((1, 1, 4, 4), np.float32))
    with pytest.raises(TypeError, match="integer indices"):
        nn.MaxUnpool2d(2)(y, idx.astype(np.float32))
    with pytest.raises(ValueError, match="indices of the input's shape"):
        nn.MaxUnpool2d(2)(y, idx[..., :1])
    with pytest.raises(ValueError, match="outside the output plane"):
        nn.MaxUnpool2d(2)(y, idx + 100)
    with pytest.raises(TypeError, match="return_indices"):
        nn.MaxPool2d(2, return_indices="yes")
    plain = nn.MaxPool2d(2)(np.ones((1, 1, 4, 4), np.float32))
    assert isinstance(plain, np.ndarray)


@pytest.mark.parametrize("size, shape", [(1, (2, 3, 5, 6)), ((2, 3), (2, 3, 4, 6)),
                                         ((3, 4), (2, 3, 5, 7)), ((None, 2), (3, 5, 5)),
                                         (3, (2, 3, 7)), (4, (3, 10))],
                         ids=["global", "divisible", "overlapping", "none-unbatched", "1d",
                              "1d-unbatched"])
def test_adaptive_max_pool_matches_torch(backend, dtype, rng, size, shape):
    """Windows (divisible: the max_pool2d kernels; overlapping: the host loop), indices
    and gradients (overlapping windows add) against torch."""
    one_d = len(shape) == 3 and not isinstance(size, tuple) or len(shape) == 2
    ours = (nn.AdaptiveMaxPool1d if one_d else nn.AdaptiveMaxPool2d)(size, return_indices=True)
    theirs = (torch.nn.AdaptiveMaxPool1d if one_d else torch.nn.AdaptiveMaxPool2d)(
        size, return_indices=True)
    x = rng.standard_normal(shape).astype(dtype)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty, tidx = theirs(tx)
    y, idx = ours(x)
    assert_close(y, ty.detach().numpy(), dtype)
    np.testing.assert_array_equal(idx, tidx.numpy())
    g = rng.standard_normal(y.shape).astype(dtype)
    ty.backward(torch.from_numpy(g))
    assert_close(ours.backward(g), tx.grad.numpy(), dtype)
    assert repr(ours) == repr(theirs)


@pytest.mark.parametrize("cls, tcls, args, shape", [
    (nn.Conv2d, torch.nn.Conv2d, dict(in_channels=4, out_channels=6, kernel_size=3, padding=2,
                                      dilation=2), (2, 4, 9, 8)),
    (nn.Conv2d, torch.nn.Conv2d, dict(in_channels=4, out_channels=8, kernel_size=3, padding=1,
                                      groups=4), (2, 4, 7, 7)),
    (nn.Conv2d, torch.nn.Conv2d, dict(in_channels=6, out_channels=6, kernel_size=(3, 2),
                                      stride=2, dilation=(2, 3), groups=3, bias=False),
     (2, 6, 11, 12)),
    (nn.Conv2d, torch.nn.Conv2d, dict(in_channels=4, out_channels=4, kernel_size=3,
                                      padding="same", dilation=3, groups=2), (4, 9, 9)),
    (nn.Conv1d, torch.nn.Conv1d, dict(in_channels=4, out_channels=4, kernel_size=3, padding=2,
                                      dilation=2, groups=2), (2, 4, 10)),
], ids=["dilation2", "depthwise-x2", "dilated-grouped-strided-nobias", "same-unbatched",
        "conv1d"])
def test_dilated_and_grouped_convolutions_match_torch(backend, dtype, rng, cls, tcls, args,
                                                     shape):
    """Dilation (the zero-spread kernel) and groups (one kernel call per group): output,
    input, weight and bias gradients, PyTorch's weight shape and init bound."""
    layer = cls(**args).to_dtype(dtype)
    twin = tcls(**args)
    assert layer.weight.shape == tuple(twin.weight.shape)
    bound = 1 / math.sqrt(math.prod(twin.weight.shape[1:]))
    assert np.abs(layer.weight.data).max() <= bound
    check_against(layer, twin, rng.standard_normal(shape).astype(dtype), rng, dtype)


def test_depthwise_separable_block_trains_like_torch(rng):
    """MobileNet's block: depthwise 3x3 (groups = channels), pointwise 1x1, BatchNorm, ReLU."""
    ours = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False), nn.BatchNorm2d(4),
                         nn.ReLU(), nn.Conv2d(4, 8, 1), nn.Flatten(), nn.Linear(8 * 36, 3))
    twin = torch.nn.Sequential(torch.nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False),
                               torch.nn.BatchNorm2d(4), torch.nn.ReLU(), torch.nn.Conv2d(4, 8, 1),
                               torch.nn.Flatten(), torch.nn.Linear(8 * 36, 3))
    check_against(ours, twin, rng.standard_normal((3, 4, 6, 6)).astype(np.float32), rng,
                  np.dtype(np.float32))


@pytest.mark.parametrize("name, args, shape", [
    ("ZeroPad2d", (1,), (2, 3, 4, 5)), ("ConstantPad2d", ((1, 2, 0, 3), 2.5), (2, 3, 4, 5)),
    ("ReflectionPad2d", ((1, 2, 3, 0),), (3, 4, 5)), ("ReplicationPad1d", (3,), (2, 3, 4)),
    ("CircularPad2d", ((2, 1, 1, 3),), (1, 2, 4, 5)), ("ReflectionPad1d", ((3, 2),), (2, 3, 4)),
    ("ReplicationPad3d", (1,), (1, 2, 3, 4, 5)), ("CircularPad1d", (4,), (2, 2, 4)),
    ("ZeroPad1d", ((0, 2),), (2, 3)), ("ConstantPad3d", (1, -1.0), (2, 3, 2, 2, 2)),
    ("ReflectionPad3d", (1,), (1, 2, 3, 3, 3)),
    ("ReplicationPad2d", ((0, 3, 2, 0),), (2, 2, 3, 3)),
])
def test_padding_layers_match_torch(backend, dtype, rng, name, args, shape):
    """Values, shape and repr; the backward sends a reflected, repeated or wrapped border's
    gradient back to the values it copied."""
    check_against(getattr(nn, name)(*args), getattr(torch.nn, name)(*args),
                  rng.standard_normal(shape).astype(dtype), rng, dtype)
    assert repr(getattr(nn, name)(*args)) == repr(getattr(torch.nn, name)(*args))


def test_padding_layers_check_their_arguments():
    with pytest.raises(ValueError, match="an int or a tuple of 4 ints"):
        nn.ZeroPad2d((1, 2))
    with pytest.raises(ValueError, match="too small"):
        nn.ReflectionPad1d(-1)(np.zeros((1, 2), np.float32))  # (-1 crops, as PyTorch's)
    with pytest.raises(ValueError, match="must be less than the input size 3"):
        nn.ReflectionPad2d(3)(np.zeros((1, 1, 3, 3), np.float32))
    with pytest.raises(ValueError, match="must be at most the input size 2"):
        nn.CircularPad1d(3)(np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match="rank 3 or 4"):
        nn.ReflectionPad2d(1)(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="rank 2 or more"):  # constant pads: any rank >= 2
        nn.ZeroPad2d(1)(np.zeros((4,), np.float32))
    assert nn.ZeroPad2d(1)(np.zeros((4, 4), np.float32)).shape == (6, 6)  # as PyTorch


@pytest.mark.parametrize("mode", ["reflect", "replicate", "circular"])
@pytest.mark.parametrize("cls, tcls, args, shape", [
    (nn.Conv2d, torch.nn.Conv2d, dict(in_channels=3, out_channels=4, kernel_size=3,
                                      padding=(1, 2), stride=(1, 2)), (2, 3, 6, 7)),
    (nn.Conv1d, torch.nn.Conv1d, dict(in_channels=3, out_channels=2, kernel_size=3, padding=2,
                                      dilation=2), (2, 3, 8)),
    (nn.Conv2d, torch.nn.Conv2d, dict(in_channels=4, out_channels=4, kernel_size=3,
                                      padding="same", groups=2), (4, 5, 5)),
], ids=["2d", "1d-dilated", "2d-same-grouped-unbatched"])
def test_conv_padding_modes_match_torch(backend, dtype, rng, mode, cls, tcls, args, shape):
    layer = cls(**args, padding_mode=mode).to_dtype(dtype)
    check_against(layer, tcls(**args, padding_mode=mode), rng.standard_normal(shape).astype(dtype),
                  rng, dtype)
    assert f"padding_mode={mode}" in repr(layer)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name, kwargs", [
    ("SoftMarginLoss", {}), ("HingeEmbeddingLoss", {}), ("HingeEmbeddingLoss", {"margin": 0.5}),
    ("PoissonNLLLoss", {}), ("PoissonNLLLoss", {"log_input": False}),
    ("PoissonNLLLoss", {"full": True}),
])
def test_more_losses_match_torch(backend, dtype, rng, name, kwargs, reduction):
    """Loss and gradient (weighted per element for 'none') against torch; SoftMargin at
    margins of 1e3 is finite and exact (PyTorch's log(1 + exp(1000)) is inf)."""
    shape = (4, 5)
    pred = (rng.standard_normal(shape) * 2).astype(dtype)
    if name == "PoissonNLLLoss":
        target = rng.poisson(3.0, shape).astype(dtype)
        if not kwargs.get("log_input", True):
            pred = np.abs(pred) + 0.1
    else:
        target = np.where(rng.random(shape) > 0.5, 1.0, -1.0).astype(dtype)
    if name == "SoftMarginLoss":
        pred[0, :2] = [30.0, -30.0]
        far = nn.SoftMarginLoss(reduction="none")(np.array([1e3, -1e3], dtype),
                                                  np.array([-1.0, -1.0], dtype))
        np.testing.assert_allclose(far, [1e3, 0.0], atol=1e-30)
    ours = getattr(nn, name)(reduction=reduction, **kwargs)
    theirs = getattr(torch.nn, name)(reduction=reduction, **kwargs)
    tp = torch.from_numpy(pred.copy()).requires_grad_(True)
    tl = theirs(tp, torch.from_numpy(target))
    loss = ours(pred, target)
    if reduction == "none":
        g = rng.standard_normal(shape).astype(dtype)
        tl.backward(torch.from_numpy(g))
        grad = ours.backward(g)
    else:
        tl.backward()
        grad = ours.backward()
    assert np.all(np.isfinite(loss))
    assert_close(np.asarray(loss), tl.detach().numpy(), dtype)
    assert_close(grad, tp.grad.numpy(), dtype)
    assert repr(ours).startswith(name)


@pytest.mark.parametrize("make, shape", [
    (lambda m: m.Hardshrink(), (3, 4, 5)), (lambda m: m.Hardshrink(1.2), (6, 7)),
    (lambda m: m.Softshrink(0.3), (3, 4, 5)), (lambda m: m.Tanhshrink(), (4, 6)),
    (lambda m: m.Threshold(0.1, 20.0), (3, 4, 5)), (lambda m: m.GLU(), (3, 4, 6)),
    (lambda m: m.GLU(1), (3, 4, 5)), (lambda m: m.Softmax2d(), (2, 3, 4, 5)),
    (lambda m: m.Softmax2d(), (3, 4, 5)), (lambda m: m.PixelShuffle(2), (2, 8, 3, 5)),
    (lambda m: m.PixelShuffle(3), (9, 2, 2)), (lambda m: m.PixelUnshuffle(2), (2, 3, 4, 6)),
], ids=["hardshrink", "hardshrink-1.2", "softshrink", "tanhshrink", "threshold", "glu",
        "glu-dim1", "softmax2d", "softmax2d-unbatched", "pixel-shuffle", "pixel-shuffle-3d",
        "pixel-unshuffle"])
def test_host_layers_match_torch(backend, dtype, rng, make, shape):
    """The NumPy-on-host layers (fastnn/nn/host_layers.py): outputs, input gradients,
    inferred shapes and reprs as PyTorch's; shrink thresholds at +-lambd exactly."""
    layer, twin = make(nn), make(torch.nn)
    x = (rng.standard_normal(shape) * 2).astype(dtype)
    x.flat[:2] = [0.5, -0.3]  # on Hardshrink's and Softshrink's thresholds
    check_against(layer, twin, x, rng, dtype)
    zeros = torch.zeros(shape, dtype=TORCH_DTYPES[np.dtype(dtype)])
    assert layer.infer_shape(shape, dtype) == tuple(twin(zeros).shape)
    assert repr(layer) == repr(twin)


def test_host_layers_nan_inf_and_bad_input():
    x = np.array([np.nan, 0.2, -0.7, 0.5, -0.5, 1.0, np.inf, -np.inf])
    for make in (lambda m: m.Hardshrink(), lambda m: m.Softshrink(0.5),
                 lambda m: m.Threshold(0.5, -3.0)):
        layer, twin = make(nn), make(torch.nn)
        tx = torch.from_numpy(x.copy()).requires_grad_(True)
        ty = twin(tx)
        ty.backward(torch.ones_like(ty))
        np.testing.assert_array_equal(layer(x), ty.detach().numpy())
        np.testing.assert_array_equal(layer.backward(np.ones_like(x)), tx.grad.numpy())
    with pytest.raises(ValueError, match=r"GLU\(dim=-1\): the size along dim -1 must be even"):
        nn.GLU()(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"expected input of shape \(\*, C \* 4, H, W\)"):
        nn.PixelShuffle(2)(np.zeros((1, 6, 2, 2)))
    with pytest.raises(ValueError, match="divisible by 2"):
        nn.PixelUnshuffle(2)(np.zeros((1, 1, 3, 4)))
    with pytest.raises(ValueError, match="Softshrink: expected lambd in"):
        nn.Softshrink(-1.0)
    with pytest.raises(ValueError, match=r"Softmax2d\(\): expected input of shape"):
        nn.Softmax2d()(np.zeros((2, 3)))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weight"])
def test_multilabel_soft_margin_loss_matches_torch(backend, dtype, rng, reduction, weighted):
    """Per-sample mean over the labels, then the reduction; logits of +-40 stay finite."""
    pred = (rng.standard_normal((5, 4)) * 3).astype(dtype)
    pred[0, :2] = [40.0, -40.0]
    target = (rng.random((5, 4)) > 0.5).astype(dtype)
    weight = np.array([1.0, 2.0, 0.5, 3.0]) if weighted else None
    ours = nn.MultiLabelSoftMarginLoss(weight=weight, reduction=reduction)
    theirs = torch.nn.MultiLabelSoftMarginLoss(
        weight=None if weight is None else torch.from_numpy(weight.astype(dtype)),
        reduction=reduction)
    tp = torch.from_numpy(pred.copy()).requires_grad_(True)
    tl = theirs(tp, torch.from_numpy(target))
    loss = ours(pred, target)
    if reduction == "none":
        g = rng.standard_normal(5).astype(dtype)
        tl.backward(torch.from_numpy(g))
        grad = ours.backward(g)
        assert loss.shape == (5,)
    else:
        tl.backward()
        grad = ours.backward()
    assert_close(np.asarray(loss), tl.detach().numpy(), dtype)
    assert_close(grad, tp.grad.numpy(), dtype)
    with pytest.raises(ValueError, match="weight of shape"):
        nn.MultiLabelSoftMarginLoss(weight=np.ones(3))(pred, target)


PAIR_LOSS_CASES = [
    ("MarginRankingLoss", dict(margin=0.3), [(6,), (6,)], True),
    ("MarginRankingLoss", dict(), [(), ()], True),
    ("CosineEmbeddingLoss", dict(margin=0.2), [(6, 5), (6, 5)], True),
    ("CosineEmbeddingLoss", dict(), [(5,), (5,)], True),
    ("TripletMarginLoss", dict(), [(6, 5)] * 3, False),
    ("TripletMarginLoss", dict(margin=2.0, swap=True), [(6, 5)] * 3, False),
    ("TripletMarginLoss", dict(p=1.0), [(6, 5)] * 3, False),
    ("TripletMarginLoss", dict(p=3.0, swap=True, margin=0.5), [(5,)] * 3, False),
]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("name, kwargs, shapes, labelled", PAIR_LOSS_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(PAIR_LOSS_CASES)])
def test_multi_input_losses_match_torch(dtype, rng, name, kwargs, shapes, labelled,
                                        reduction):
    """forward(*inputs) and backward() -> one gradient per float input, against torch
    (batched and unbatched inputs, swap, p-norms, margins)."""
    xs = [rng.standard_normal(s).astype(dtype) for s in shapes]
    label_shape = shapes[0] if name == "MarginRankingLoss" else shapes[0][:-1]
    y = (np.where(rng.random(label_shape) > 0.5, 1.0, -1.0).astype(dtype)
         if labelled else None)
    ours = getattr(nn, name)(reduction=reduction, **kwargs)
    theirs = getattr(torch.nn, name)(reduction=reduction, **kwargs)
    txs = [torch.from_numpy(x.copy()).requires_grad_(True) for x in xs]
    tl = theirs(*txs, *([torch.from_numpy(y)] if labelled else []))
    loss = ours(*xs, *([y] if labelled else []))
    g = rng.standard_normal(tuple(tl.shape)).astype(dtype) if tl.ndim else None
    tl.backward(None if g is None else torch.from_numpy(g))
    grads = ours.backward(g)
    assert len(grads) == len(xs)
    assert_close(np.asarray(loss), tl.detach().numpy(), dtype)
    for ours_g, tx in zip(grads, txs):
        assert ours_g.shape == tuple(tx.shape) and ours_g.dtype == dtype
        assert_close(ours_g, tx.grad.numpy(), dtype)
    assert repr(ours).startswith(name)


def test_multi_input_losses_bad_input():
    x = np.zeros((3, 4))
    with pytest.raises(TypeError, match=r"expected 3 inputs \(input1, input2, target\), got 2"):
        nn.CosineEmbeddingLoss()(x, x)
    with pytest.raises(ValueError, match="expected target values of 1 or -1"):
        nn.MarginRankingLoss()(np.zeros(3), np.zeros(3), np.zeros(3))
    with pytest.raises(ValueError, match=r"expected negative of shape \(3, 4\)"):
        nn.TripletMarginLoss()(x, x, np.zeros((3, 5)))
    with pytest.raises(TypeError, match="dtype"):
        nn.TripletMarginLoss()(x, x, x.astype(np.float32))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        nn.TripletMarginLoss().backward()
    loss = nn.MarginRankingLoss(reduction="none")
    loss(np.zeros(3), np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match=r"number or of shape \(3,\)"):
        loss.backward(np.ones(4))


@pytest.mark.parametrize("make, shape", [
    (lambda m: m.CosineSimilarity(), (4, 5)), (lambda m: m.CosineSimilarity(dim=-1), (2, 3, 6)),
    (lambda m: m.CosineSimilarity(dim=0), (5,)), (lambda m: m.PairwiseDistance(), (4, 5)),
    (lambda m: m.PairwiseDistance(p=1.0, keepdim=True), (4, 5)),
    (lambda m: m.PairwiseDistance(p=3.0), (5,)),
    (lambda m: m.PairwiseDistance(p=float("inf")), (4, 5)),
    (lambda m: m.PairwiseDistance(p=-float("inf")), (4, 5)),
    (lambda m: m.PairwiseDistance(p=-1.5), (4, 5)),
], ids=["cos", "cos-last", "cos-unbatched", "dist", "dist-p1-keepdim", "dist-p3-unbatched",
        "dist-inf", "dist-minus-inf", "dist-negative"])
def test_two_input_modules_match_torch(dtype, rng, make, shape):
    """forward(x1, x2) and backward(grad) -> (grad_x1, grad_x2) against torch; a zero
    vector's cosine (eps-clamped norm) and its gradients too."""
    ours, theirs = make(nn), make(torch.nn)
    x1, x2 = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    zero_row = isinstance(ours, nn.CosineSimilarity) and len(shape) == 2
    if zero_row:  # its gradient is x2 / (eps |x2|): about 1e8
        x1[0] = 0.0
    t1, t2 = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (x1, x2))
    ty = theirs(t1, t2)
    g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.from_numpy(g))
    y = ours(x1, x2)
    g1, g2 = ours.backward(g)
    assert y.shape == tuple(ty.shape) and y.dtype == dtype
    assert_close(y, ty.detach().numpy(), dtype)
    assert_close(g1, t1.grad.numpy(), dtype, scale=1e8 if zero_row else 1)
    assert_close(g2, t2.grad.numpy(), dtype)
    assert repr(ours) == repr(theirs)
    if isinstance(ours, nn.PairwiseDistance):   # p = 0 counts the nonzero differences
        x2[..., 0] = x1[..., 0] + ours.eps
        count = nn.PairwiseDistance(p=0)
        assert_close(count(x1, x2), torch.nn.PairwiseDistance(p=0)(
            torch.from_numpy(x1), torch.from_numpy(x2)).numpy(), dtype)
        assert not np.any(count.backward(np.ones(count(x1, x2).shape, dtype))[0])
    with pytest.raises(ValueError, match="broadcast"):
        ours(x1, x2[..., :-1])


@pytest.mark.parametrize("name", ["cos", "pairwise"])
@pytest.mark.parametrize("shapes", [((4, 5), (1, 5)), ((4, 5), (5,)), ((3, 1, 5), (4, 5))])
def test_two_input_modules_broadcast_as_torch(rng, name, shapes):
    """PyTorch broadcasts x1 and x2; each gradient is summed back to its input's shape."""
    build = {"cos": lambda m: m.CosineSimilarity(dim=-1),
             "pairwise": lambda m: m.PairwiseDistance()}[name]
    x1, x2 = (rng.standard_normal(s) for s in shapes)
    t1, t2 = (torch.tensor(x, requires_grad=True) for x in (x1, x2))
    ty = build(torch.nn)(t1, t2)
    g = rng.standard_normal(tuple(ty.shape))
    ty.backward(torch.from_numpy(g))
    ours = build(nn)
    y = ours(x1, x2)
    g1, g2 = ours.backward(g)
    assert_close(y, ty.detach().numpy(), np.float64)
    assert g1.shape == x1.shape and g2.shape == x2.shape
    assert_close(g1, t1.grad.numpy(), np.float64)
    assert_close(g2, t2.grad.numpy(), np.float64)


@pytest.mark.parametrize("bias, lead", [(True, (4,)), (False, (2, 3)), (True, ())],
                         ids=["batch", "no-bias-leading-dims", "unbatched"])
def test_bilinear_matches_torch(dtype, rng, bias, lead):
    theirs = torch.nn.Bilinear(3, 5, 2, bias=bias).to(TORCH_DTYPES[np.dtype(dtype)])
    ours = nn.Bilinear(3, 5, 2, bias=bias, dtype=dtype)
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    x1, x2 = (rng.standard_normal(lead + (n,)).astype(dtype) for n in (3, 5))
    t1, t2 = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (x1, x2))
    ty = theirs(t1, t2)
    g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.from_numpy(g))
    y = ours(x1, x2)
    g1, g2 = ours.backward(g)
    assert_close(y, ty.detach().numpy(), dtype)
    assert_close(g1, t1.grad.numpy(), dtype)
    assert_close(g2, t2.grad.numpy(), dtype)
    named = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert_close(p.grad, named[name].grad.numpy(), dtype, err_msg=name)
    assert repr(ours) == repr(theirs)
    with pytest.raises(ValueError, match="same leading dimensions"):
        ours(x1, x2[..., :4])


@pytest.mark.parametrize("make, shape, weighted", [
    (lambda m, dt: m.ChannelShuffle(2), (2, 6, 3, 2), False),
    (lambda m, dt: m.ChannelShuffle(3), (2, 6, 5), False),
    (lambda m, dt: m.RMSNorm(5, **dt), (3, 4, 5), True),
    (lambda m, dt: m.RMSNorm((4, 5), eps=1e-3, **dt), (3, 4, 5), True),
    (lambda m, dt: m.RMSNorm(5, elementwise_affine=False), (3, 5), False),
    (lambda m, dt: m.LocalResponseNorm(2, alpha=0.1, k=2.0), (2, 6, 3, 3), False),
    (lambda m, dt: m.LocalResponseNorm(5, alpha=0.1, beta=0.5, k=2.0), (2, 6, 3, 3), False),
    (lambda m, dt: m.LocalResponseNorm(3), (2, 5, 7), False),
], ids=["shuffle-2", "shuffle-3", "rmsnorm", "rmsnorm-2d-eps", "rmsnorm-no-affine",
        "lrn-even", "lrn-5", "lrn-1d"])
def test_channel_shuffle_rmsnorm_lrn_match_torch(dtype, rng, make, shape, weighted):
    layer = make(nn, {"dtype": dtype} if weighted else {})
    twin = make(torch.nn, {})
    if weighted:
        layer.weight.data[...] = rng.uniform(0.5, 1.5, layer.weight.shape)
    check_against(layer, twin, rng.standard_normal(shape).astype(dtype), rng, dtype)
    assert repr(layer) == repr(twin)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("full", [False, True], ids=["plain", "full"])
@pytest.mark.parametrize("var_shape", [(4, 3), (4,), (4, 1)], ids=["same", "per-row", "row-1"])
def test_gaussian_nll_loss_matches_torch(dtype, rng, reduction, full, var_shape):
    """Loss and the gradients of input, target and var (a var below eps clamped, its
    gradient as PyTorch's; per-row var summed over the row)."""
    x, t = (rng.standard_normal((4, 3)).astype(dtype) for _ in range(2))
    var = rng.uniform(0.1, 2.0, var_shape).astype(dtype)
    var.flat[0] = 1e-8
    ours = nn.GaussianNLLLoss(full=full, reduction=reduction)
    theirs = torch.nn.GaussianNLLLoss(full=full, reduction=reduction)
    tx, tt, tv = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (x, t, var))
    tl = theirs(tx, tt, tv)
    loss = ours(x, t, var)
    g = rng.standard_normal(tuple(tl.shape)).astype(dtype) if tl.ndim else None
    tl.backward(None if g is None else torch.from_numpy(g))
    grads = ours.backward(g)
    assert_close(np.asarray(loss), tl.detach().numpy(), dtype)
    for ours_g, tg in zip(grads, (tx, tt, tv)):
        assert ours_g.shape == tuple(tg.shape)
        assert_close(ours_g, tg.grad.numpy(), dtype, scale=10)
    with pytest.raises(ValueError, match="var has negative entries"):
        ours(x, t, -np.ones_like(var))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("p, margin, weighted", [(1, 1.0, False), (2, 0.3, True)],
                         ids=["p1", "p2-margin-weight"])
def test_multi_margin_loss_matches_torch(backend, dtype, rng, reduction, p, margin, weighted):
    pred = rng.standard_normal((6, 5)).astype(dtype)
    labels = rng.integers(0, 5, 6)
    weight = rng.uniform(0.5, 2.0, 5) if weighted else None
    ours = nn.MultiMarginLoss(p=p, margin=margin, weight=weight, reduction=reduction)
    theirs = torch.nn.MultiMarginLoss(
        p=p, margin=margin, reduction=reduction,
        weight=None if weight is None else torch.from_numpy(weight.astype(dtype)))
    tp = torch.from_numpy(pred.copy()).requires_grad_(True)
    tl = theirs(tp, torch.from_numpy(labels))
    loss = ours(pred, labels)
    g = rng.standard_normal(6).astype(dtype) if reduction == "none" else None
    tl.backward(None if g is None else torch.from_numpy(g))
    grad = ours.backward(g)
    assert_close(np.asarray(loss), tl.detach().numpy(), dtype)
    assert_close(grad, tp.grad.numpy(), dtype)
    with pytest.raises(ValueError, match="labels out of range"):
        ours(pred, np.full(6, 5))
    with pytest.raises(ValueError, match="only p = 1 and p = 2"):
        nn.MultiMarginLoss(p=3)


@pytest.mark.parametrize("args", [
    dict(kernel_size=3), dict(kernel_size=4, stride=2, padding=1),
    dict(kernel_size=3, stride=2, padding=1, output_padding=1),
    dict(kernel_size=3, groups=2, dilation=2, bias=False),
    dict(kernel_size=(2,), stride=(3,), padding=(2,), dilation=(2,), output_padding=(1,)),
], ids=["k3", "k4s2p1", "output-padding", "groups-dilation", "tuples-crop"])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
def test_conv_transpose1d_matches_torch(backend, dtype, rng, args, batched):
    layer = nn.ConvTranspose1d(4, 6, **args).to_dtype(dtype)
    twin = torch.nn.ConvTranspose1d(4, 6, **args)
    assert layer.weight.shape == tuple(twin.weight.shape)
    shape = (2, 4, 7) if batched else (4, 7)
    check_against(layer, twin, rng.standard_normal(shape).astype(dtype), rng, dtype, 30)
    assert repr(layer) == repr(twin)
    zeros = torch.zeros(shape, dtype=twin.weight.dtype)
    assert layer.infer_shape(shape, dtype) == tuple(twin(zeros).shape)


def test_max_unpool_output_size_entries_and_range_as_torch():
    """output_size has dims or dims + 2 entries, each within one stride of the default
    ((H_in - 1) s - 2 p + k), as PyTorch's _unpool_output_size checks."""
    x = np.random.default_rng(0).standard_normal((3, 8, 8))
    y, idx = nn.MaxPool2d(2, return_indices=True)(x)
    unpool = nn.MaxUnpool2d(2)
    ty, tidx = torch.nn.MaxPool2d(2, return_indices=True)(torch.from_numpy(x))
    for size in [(8, 8), (1, 3, 8, 8), (9, 9), (7, 9)]:
        np.testing.assert_array_equal(
            unpool(y, idx, output_size=size),
            torch.nn.MaxUnpool2d(2)(ty, tidx, output_size=size).numpy())
    for size in [(3, 8, 8), (10, 8), (8, 6)]:
        with pytest.raises(ValueError, match="output_size"):
            unpool(y, idx, output_size=size)
    y1, idx1 = nn.MaxPool1d(2, return_indices=True)(x)
    assert nn.MaxUnpool1d(2)(y1, idx1, output_size=(3, 8, 9)).shape == (3, 8, 9)
    with pytest.raises(ValueError, match="between 6 and 10"):
        nn.MaxUnpool1d(2)(y1, idx1, output_size=(10,))


@pytest.mark.parametrize("make,layer,arg", [
    (lambda: nn.PixelShuffle(2 ** 70), "PixelShuffle", "upscale_factor"),
    (lambda: nn.PixelUnshuffle(2 ** 70), "PixelUnshuffle", "downscale_factor"),
    (lambda: nn.ChannelShuffle(2 ** 70), "ChannelShuffle", "groups"),
    (lambda: nn.Flatten(2 ** 70), "Flatten", "start_dim"),
    (lambda: nn.Flatten(1, -2 ** 70), "Flatten", "end_dim"),
    (lambda: nn.Unflatten(1, (2 ** 70, 1)), "Unflatten", "unflattened_size"),
    (lambda: nn.Unflatten(2 ** 70, (2, 2)), "Unflatten", "dim"),
    (lambda: nn.LocalResponseNorm(2 ** 70), "LocalResponseNorm", "size"),
    (lambda: nn.LayerNorm((2, 2 ** 70)), "LayerNorm", "normalized_shape"),
    (lambda: nn.Linear(2 ** 70, 1), "Linear", "in_features"),
    (lambda: nn.PReLU(2 ** 70), "PReLU", "num_parameters"),
])
def test_ints_beyond_int64_are_refused_at_construction(make, layer, arg):
    """They were taken and the forward failed (PyTorch's forward too: 'Overflow when
    unpacking long long', a TypeError or ValueError, as this error is both), or the
    construction failed on NumPy's 'Maximum allowed dimension exceeded' naming neither
    (Linear, LayerNorm, PReLU); RNN(num_layers=2 ** 70), which never ended, is refused by
    the same check (check_positive_int's)."""
    with pytest.raises(ValueError, match=f"{layer}: expected {arg} to be ints within "
                                         f"int64") as info:
        make()
    assert isinstance(info.value, TypeError)
