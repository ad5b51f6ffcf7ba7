"""Layers probed against PyTorch 2.13 with randomized configurations: Embedding,
EmbeddingBag, CTCLoss, AdaptiveLogSoftmaxWithLoss, CosineSimilarity / PairwiseDistance /
Bilinear, Fold / Unfold, the shuffles, every padding layer, MaxUnpool, LPPool (p = +-inf
included), FractionalMaxPool, LocalResponseNorm / CrossMapLRN2d, GLU, PReLU, RReLU,
Threshold, Softmax2d, Flatten / Unflatten: forward, the gradient of every input and
parameter, attributes and reprs, on every backend in float32 and float64."""
import numpy as np
import pytest

import fastnn
from fastnn import nn

from conftest import assert_close

torch = pytest.importorskip("torch")
torch.set_num_threads(2)

TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def run_both(ours, theirs, inputs, dtype, rng, scale=1.0, **kwargs):
    """Forward (inputs: float arrays get gradients, integer ones not) and backward of a
    random grad_out through both, with theirs' parameters loaded into ours; outputs,
    input and parameter gradients agree."""
    theirs = theirs.to(TORCH_DTYPE[np.dtype(dtype)])
    state = {k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()}
    if state:
        ours.load_state_dict(state)
    tins = [torch.from_numpy(np.array(a, copy=True)) for a in inputs]
    for t in tins:
        if t.is_floating_point():
            t.requires_grad_(True)
    ty = theirs(*tins, **kwargs)
    y = ours(*[np.array(a, copy=True) for a in inputs], **kwargs)
    assert y.shape == tuple(ty.shape) and y.dtype == dtype
    assert_close(y, ty.detach().numpy(), dtype, scale)
    assert repr(ours) == repr(theirs)
    g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
    ty.backward(torch.from_numpy(g))
    grads = ours.backward(g)
    floats = [t for t in tins if t.is_floating_point()]
    grads = list(grads) if isinstance(grads, tuple) else [grads]
    for got, t in zip(grads, floats):
        assert_close(got, t.grad.numpy(), dtype, scale)
    params = dict(ours.named_parameters())
    for name, p in theirs.named_parameters():
        if p.grad is not None:
            assert_close(params[name].grad, p.grad.numpy(), dtype, 10 * scale, err_msg=name)


# ------------------------------------------------------------ what the probe fixed
@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("p", [float("inf"), -float("inf")])
def test_lppool_infinite_norm_is_max_or_min_of_abs(backend, dtype, rng, dims, p):
    """PyTorch 2.13: norm_type inf is max_pool(|x|), -inf -max_pool(-|x|) (with
    ceil_mode and strides), the gradient sign(x) at the chosen cell."""
    for ceil_mode in (False, True):
        kernel = 3 if dims == 1 else (2, 3)[:dims] + (2,) * (dims - 2)
        stride = 2
        shape = (2, 3) + (7, 6, 5)[:dims]
        x = rng.standard_normal(shape).astype(dtype)
        make = lambda m: getattr(m, f"LPPool{dims}d")(p, kernel, stride, ceil_mode)  # noqa: E731
        run_both(make(nn), make(torch.nn), [x], dtype, rng)
        run_both(make(nn), make(torch.nn), [x[0]], dtype, rng)   # unbatched


def test_lppool_keeps_kernel_size_and_stride_as_given():
    for ours, theirs in ((nn.LPPool1d(2, 3), torch.nn.LPPool1d(2, 3)),
                         (nn.LPPool1d(2, 3, stride=2), torch.nn.LPPool1d(2, 3, stride=2)),
                         (nn.LPPool2d(1.5, (2, 3)), torch.nn.LPPool2d(1.5, (2, 3))),
                         (nn.LPPool3d(float("inf"), 2, stride=(1, 2, 1)),
                          torch.nn.LPPool3d(float("inf"), 2, stride=(1, 2, 1)))):
        assert (ours.kernel_size, ours.stride) == (theirs.kernel_size, theirs.stride)
        assert repr(ours) == repr(theirs)
    assert nn.LPPool2d(2, 2).stride is None
    with pytest.raises(ValueError, match="norm_type"):
        nn.LPPool2d(0, 2)


def test_attributes_as_pytorch_keeps_them():
    """The arguments as PyTorch stores them: the padding layers' full tuple, values as
    given (an int stays an int), Unflatten's list, PReLU.init, EmbeddingBag.sparse."""
    pairs = [(nn.ZeroPad1d(2), torch.nn.ZeroPad1d(2)),
             (nn.ReflectionPad3d(1), torch.nn.ReflectionPad3d(1)),
             (nn.ConstantPad2d(2, 3), torch.nn.ConstantPad2d(2, 3)),
             (nn.CircularPad2d((1, 2, 0, 1)), torch.nn.CircularPad2d((1, 2, 0, 1))),
             (nn.Threshold(0.5, 2), torch.nn.Threshold(0.5, 2)),
             (nn.PairwiseDistance(p=3), torch.nn.PairwiseDistance(p=3)),
             (nn.Unflatten(1, [2, 3]), torch.nn.Unflatten(1, [2, 3])),
             (nn.PReLU(3, init=0.1), torch.nn.PReLU(3, init=0.1)),
             (nn.EmbeddingBag(5, 3), torch.nn.EmbeddingBag(5, 3))]
    for ours, theirs in pairs:
        for name, value in vars(theirs).items():
            if name.startswith("_") or name == "training" or isinstance(value, torch.Tensor):
                continue
            got = getattr(ours, name)
            assert got == value and type(got) is type(value), (type(ours).__name__, name)
        assert repr(ours) == repr(theirs)
    x = np.arange(12, dtype=np.float32).reshape(2, 6)
    assert nn.Unflatten(1, [2, 3])(x).shape == (2, 2, 3)
    assert_close(nn.PairwiseDistance(p=3)(x, x[::-1].copy()),
                 torch.nn.PairwiseDistance(p=3)(torch.from_numpy(x),
                                                torch.from_numpy(x[::-1].copy())).numpy(),
                 np.float32)


def test_rrelu_keeps_a_0d_input_0d(rng):
    for training in (True, False):
        layer = nn.RReLU(0.1, 0.3)
        layer.train(training)
        x = np.array(-2.0, np.float32)
        y = layer(x)
        assert y.shape == () and y.dtype == np.float32
        g = layer.backward(np.array(1.0, np.float32))
        assert g.shape == () and -0.61 < float(y) < -0.19 and float(g) == float(y) / -2.0
    layer.eval()
    assert float(layer(x)) == pytest.approx(-0.4)


def test_max_unpool_with_an_empty_default_output():
    """A default output size of 0 gives an empty output, as PyTorch's (no index check)."""
    x = np.ones((1, 2, 1), np.float32)
    idx = np.zeros((1, 2, 1), np.int64)
    y = nn.MaxUnpool1d(2, stride=3, padding=1)(x, idx)
    assert y.shape == tuple(torch.nn.MaxUnpool1d(2, stride=3, padding=1)(
        torch.from_numpy(x), torch.from_numpy(idx)).shape) == (1, 2, 0)


# -------------------------------------------------------------- randomized sweeps
def _unary_configs(rng):
    """(name, args, kwargs, input shape, positive input) of random valid configs."""
    r = lambda a, b: int(rng.integers(a, b))  # noqa: E731
    out = []
    for kind in ("Zero", "Constant", "Reflection", "Replication", "Circular"):
        for d in (1, 2, 3):
            spatial = tuple(r(3, 6) for _ in range(d))
            pad = tuple(r(-1, 3) for _ in range(2 * d))
            args = (pad, float(rng.normal())) if kind == "Constant" else (pad,)
            lead = (r(1, 3),) if d % 2 else ()
            out.append((f"{kind}Pad{d}d", args, {}, lead + (2,) + spatial, False))
    rr = r(1, 4)
    out += [("PixelShuffle", (rr,), {}, (2, 2 * rr * rr, 3, 2), False),
            ("PixelUnshuffle", (2,), {}, (2, 4, 6), False),
            ("ChannelShuffle", (3,), {}, (2, 6, 3), False),
            ("Unfold", ((2, 3),), dict(dilation=(1, 2), padding=1, stride=(2, 1)),
             (2, 3, 6, 7), False),
            ("Unfold", (2,), {}, (3, 4, 5), False),
            ("Fold", ((5, 6), (2, 3)), dict(padding=(1, 0), stride=(2, 1), dilation=(1, 2)),
             (2, 3 * 6, 3 * 2), False),
            ("Fold", (4, 2), {}, (8, 9), False),
            ("LocalResponseNorm", (r(1, 6),), dict(alpha=0.3, beta=0.6, k=1.5),
             (2, 5, 3, 2), False),
            ("CrossMapLRN2d", (r(2, 6),), dict(alpha=0.3, beta=0.6, k=1.5), (2, 5, 3, 2),
             False),
            ("GLU", (), dict(dim=1), (2, 4, 3), False),
            ("PReLU", (), dict(num_parameters=3, init=0.2), (2, 3, 4), False),
            ("PReLU", (), {}, (), False),
            ("Threshold", (0.1, -2.0), {}, (3, 4), False),
            ("Softmax2d", (), {}, (3, 4, 5), False),
            ("Flatten", (0, -2), {}, (2, 3, 4), False),
            ("Unflatten", (-1, (2, -1)), {}, (3, 6), False)]
    for dims in (1, 2, 3):
        for p in (1, 2, 1.5, -2):
            kernel = r(1, 4)
            out.append((f"LPPool{dims}d", (p, kernel), dict(stride=r(1, 3), ceil_mode=True),
                        (2, 2) + (6,) * dims, True))
    return out


def test_unary_layers_match_torch(backend, dtype, rng):
    for name, args, kwargs, shape, positive in _unary_configs(rng):
        x = rng.standard_normal(shape).astype(dtype)
        x = np.abs(x) + dtype.type(0.1) if positive else x
        ours = getattr(nn, name)(*args, **kwargs)
        if name == "PReLU":
            ours = nn.PReLU(*args, **kwargs, dtype=dtype)
        run_both(ours, getattr(torch.nn, name)(*args, **kwargs), [x], dtype, rng,
                 scale=10 if "LP" in name else 1)


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_max_unpool_output_size_matches_torch(backend, dtype, rng, dims):
    for kernel, stride, padding in ((2, 2, 0), (3, 2, 1), (2, 3, 1)):
        pool = getattr(torch.nn, f"MaxPool{dims}d")(kernel, stride, padding,
                                                    return_indices=True)
        x = torch.from_numpy(rng.standard_normal((2, 2) + (7,) * dims).astype(dtype))
        y, idx = pool(x)
        default = (y.shape[-1] - 1) * stride - 2 * padding + kernel
        sizes = [[7] * dims, tuple(y.shape[:2]) + (7,) * dims]   # the pooled input's
        for size in sizes + ([None] if default >= 7 else []):
            kwargs = {} if size is None else {"output_size": size}
            run_both(getattr(nn, f"MaxUnpool{dims}d")(kernel, stride, padding),
                     getattr(torch.nn, f"MaxUnpool{dims}d")(kernel, stride, padding),
                     [y.numpy(), idx.numpy()], dtype, rng, **kwargs)


def test_two_input_layers_match_torch(backend, dtype, rng):
    for make, s1, s2 in [
            (lambda m: m.CosineSimilarity(dim=0, eps=1e-3), (4, 3), (4, 1)),
            (lambda m: m.CosineSimilarity(dim=-1), (2, 1, 5), (3, 5)),
            (lambda m: m.PairwiseDistance(p=1, keepdim=True), (4, 5), (5,)),
            (lambda m: m.PairwiseDistance(p=float("inf"), eps=1e-3), (3, 4), (3, 4)),
            (lambda m: m.PairwiseDistance(p=-1.5), (3, 4), (1, 4)),
            (lambda m: m.Bilinear(3, 4, 2), (2, 3, 3), (2, 3, 4)),
            (lambda m: m.Bilinear(3, 4, 2, bias=False), (3,), (4,))]:
        ours = make(nn)
        if isinstance(ours, nn.Bilinear):
            ours = ours.to_dtype(dtype)
        x1, x2 = (rng.standard_normal(s).astype(dtype) for s in (s1, s2))
        run_both(ours, make(torch.nn), [x1, x2], dtype, rng, scale=5)


def test_embedding_random_configs_match_torch(backend, dtype, rng):
    for _ in range(12):
        n, d = int(rng.integers(2, 7)), int(rng.integers(1, 4))
        kwargs = {"padding_idx": int(rng.integers(-n, n))} if rng.random() < 0.6 else {}
        if rng.random() < 0.3:
            kwargs["max_norm"] = 1.0
        if rng.random() < 0.3:
            kwargs["scale_grad_by_freq"] = True
        idx = rng.integers(0, n, (3, 4))
        if rng.random() < 0.4:
            table = rng.standard_normal((n, d)).astype(dtype)
            ours = nn.Embedding.from_pretrained(table.copy(), freeze=False, **kwargs)
            theirs = torch.nn.Embedding.from_pretrained(torch.from_numpy(table), freeze=False,
                                                        **kwargs)
        else:
            ours = nn.Embedding(n, d, dtype=dtype, **kwargs)
            theirs = torch.nn.Embedding(n, d, **kwargs)
        run_both(ours, theirs, [idx], dtype, rng)
        assert_close(ours.weight.data, theirs.weight.detach().numpy(), dtype)  # max_norm
        assert ours.padding_idx == theirs.padding_idx


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_random_configs_match_torch(backend, dtype, rng, mode):
    for trial in range(10):
        n, d = int(rng.integers(2, 7)), int(rng.integers(1, 4))
        kwargs = {"mode": mode, "include_last_offset": trial % 3 == 2}
        if rng.random() < 0.5:
            kwargs["padding_idx"] = int(rng.integers(-n, n))
        theirs = torch.nn.EmbeddingBag(n, d, **kwargs).to(TORCH_DTYPE[dtype])
        ours = nn.EmbeddingBag(n, d, dtype=dtype, **kwargs)
        ours.load_state_dict({"weight": theirs.weight.detach().numpy().copy()})
        if trial % 2:
            idx, offsets = rng.integers(0, n, (3, 4)), None
        else:
            idx = rng.integers(0, n, 9)
            offsets = np.sort(rng.integers(0, 10, 3))
            offsets[0] = 0
            if kwargs["include_last_offset"]:
                offsets = np.append(offsets, 9)
        weights = rng.standard_normal(idx.shape).astype(dtype) if mode == "sum" else None
        tw = None if weights is None else torch.from_numpy(weights.copy()).requires_grad_(True)
        ty = theirs(torch.from_numpy(idx), None if offsets is None else
                    torch.from_numpy(offsets), per_sample_weights=tw)
        y = ours(idx, offsets=offsets, per_sample_weights=weights)
        assert_close(y, ty.detach().numpy(), dtype)
        assert repr(ours) == repr(theirs)
        g = rng.standard_normal(tuple(ty.shape)).astype(dtype)
        ty.backward(torch.from_numpy(g))
        grad_w = ours.backward(g)
        assert_close(ours.weight.grad, theirs.weight.grad.numpy(), dtype, 10)
        if weights is not None:
            assert_close(grad_w, tw.grad.numpy(), dtype, 10)


def test_ctc_random_configs_match_torch(backend, dtype, rng):
    for trial in range(16):
        t, n, c = int(rng.integers(2, 9)), int(rng.integers(1, 4)), int(rng.integers(2, 6))
        kwargs = dict(blank=int(rng.integers(0, c)),
                      reduction=("mean", "sum", "none")[trial % 3],
                      zero_infinity=bool(trial % 2))
        labels = [k for k in range(c) if k != kwargs["blank"]]
        target_lengths = rng.integers(0, 6, n)
        input_lengths = rng.integers(1, t + 1, n)
        padded = rng.choice(labels, (n, 6))
        targets = (padded if trial % 4 < 2 else
                   np.concatenate([padded[b, :target_lengths[b]] for b in range(n)]))
        log_probs = torch.log_softmax(torch.tensor(rng.standard_normal((t, n, c))), 2)
        log_probs = log_probs.numpy().astype(dtype)
        if trial % 5 == 4:   # one unbatched sequence
            log_probs, targets = log_probs[:, 0], padded[0, :target_lengths[0]]
            input_lengths, target_lengths = input_lengths[0], target_lengths[0]
        tlp = torch.from_numpy(log_probs.copy()).requires_grad_(True)
        theirs = torch.nn.CTCLoss(**kwargs)(tlp, torch.from_numpy(np.asarray(targets)),
                                            torch.tensor(input_lengths),
                                            torch.tensor(target_lengths))
        loss = nn.CTCLoss(**kwargs)
        ours = loss(log_probs, targets, input_lengths, target_lengths)
        assert np.shape(ours) == tuple(theirs.shape)
        assert_close(ours, theirs.detach().numpy(), dtype, 10)
        g = rng.standard_normal(tuple(theirs.shape)).astype(dtype)
        theirs.backward(torch.from_numpy(g))
        assert_close(loss.backward(g if g.ndim else float(g)), tlp.grad.numpy(), dtype, 10)


def test_adaptive_log_softmax_random_configs_match_torch(backend, dtype, rng):
    for trial in range(8):
        n_classes = int(rng.integers(4, 14))
        cutoffs = sorted(rng.choice(np.arange(1, n_classes), int(rng.integers(1, 4)),
                                    replace=False).tolist())
        kwargs = dict(div_value=(1.0, 2.0, 4.0)[trial % 3], head_bias=bool(trial % 2))
        theirs = torch.nn.AdaptiveLogSoftmaxWithLoss(8, n_classes, cutoffs, **kwargs)
        theirs = theirs.to(TORCH_DTYPE[dtype])
        ours = nn.AdaptiveLogSoftmaxWithLoss(8, n_classes, cutoffs, dtype=dtype, **kwargs)
        ours.load_state_dict({k: v.detach().numpy().copy()
                              for k, v in theirs.state_dict().items()})
        assert repr(ours) == repr(theirs)
        x = rng.standard_normal((5, 8)).astype(dtype)
        target = rng.integers(0, n_classes, 5)
        tx = torch.from_numpy(x.copy()).requires_grad_(True)
        tout = theirs(tx, torch.from_numpy(target))
        out = ours(x, target)
        assert_close(out.output, tout.output.detach().numpy(), dtype, 10)
        assert_close(out.loss, tout.loss.item(), dtype, 10)
        tout.loss.backward()
        assert_close(ours.backward(), tx.grad.numpy(), dtype, 10)
        named = dict(ours.named_parameters())
        for name, p in theirs.named_parameters():
            expected = np.zeros(p.shape) if p.grad is None else p.grad.numpy()
            assert_close(named[name].grad, expected, dtype, 30, err_msg=name)
        assert_close(ours.log_prob(x), theirs.log_prob(torch.from_numpy(x)).detach().numpy(),
                     dtype, 10)
        assert np.array_equal(ours.predict(x), theirs.predict(torch.from_numpy(x)).numpy())


@pytest.mark.parametrize("dims", [2, 3])
def test_fractional_max_pool_random_samples_match_torch(backend, dtype, rng, dims):
    cls, tcls = getattr(nn, f"FractionalMaxPool{dims}d"), getattr(torch.nn,
                                                                  f"FractionalMaxPool{dims}d")
    for kwargs in (dict(output_size=3, return_indices=True), dict(output_ratio=0.6),
                   dict(output_ratio=(0.4, 0.7, 0.5)[:dims])):
        samples = rng.random((2, 2, dims)).astype(dtype)
        x = rng.standard_normal((2, 2) + (7, 8, 6)[:dims]).astype(dtype)
        ours, theirs = cls(2, _random_samples=samples, **kwargs), tcls(
            2, _random_samples=torch.from_numpy(samples), **kwargs)
        tx = torch.from_numpy(x.copy()).requires_grad_(True)
        tout, out = theirs(tx), ours(x)
        if kwargs.get("return_indices"):
            assert np.array_equal(out[1], tout[1].numpy())
            out, tout = out[0], tout[0]
        assert_close(out, tout.detach().numpy(), dtype)
        assert repr(ours) == repr(theirs)
        g = rng.standard_normal(tuple(tout.shape)).astype(dtype)
        tout.backward(torch.from_numpy(g))
        assert_close(ours.backward(g), tx.grad.numpy(), dtype)
