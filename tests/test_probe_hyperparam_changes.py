"""Hyper-parameters changed after construction take effect as in PyTorch.

PyTorch's modules read their attributes at each forward (``bn.momentum = 0.01``,
``conv.padding = (2, 2)``, ``loss.reduction = 'sum'``, ...) and its optimizers read
``param_groups[i][...]`` at each step. For each fastnn layer, loss and optimizer with a
torch counterpart of the same name, these tests build both (float64, the same weights),
run a first forward/backward (or steps: any plan or scale cached at the first call
exists then), change one public hyper-parameter on both, and compare the next
forward/backward (outputs, input gradients, parameter gradients, buffers) or the
parameters and state after more steps, on every backend.

Each layer case is written once for both libraries: ``s`` is torch.nn or fastnn.nn."""
import numpy as np
import pytest

import fastnn
from fastnn import nn, optim

torch = pytest.importorskip("torch")  # (after fastnn: see fastnn's OpenMP warning)

RTOL, ATOL = 1e-10, 1e-12


def _x(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _close(ours, theirs, what):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs
    np.testing.assert_allclose(np.asarray(ours, np.float64), np.asarray(theirs, np.float64),
                               rtol=RTOL, atol=ATOL, err_msg=what)


def _pair(ctor):
    """(fastnn's layer, torch's) in float64, torch's with fastnn's state."""
    ours, theirs = ctor(nn).double(), ctor(torch.nn).double()
    theirs.load_state_dict({k: torch.from_numpy(np.array(v))
                            for k, v in ours.state_dict().items()})
    return ours, theirs


def _compare_pass(ours, theirs, x, what):
    """One forward and backward of each on copies of x, grads zeroed first: the outputs,
    the input gradients, the parameters' gradients and the buffers (and parameters)
    after the pass. x: an array, or a pair of them (two inputs); integer: indices."""
    ours.zero_grad()
    theirs.zero_grad()
    xs = x if isinstance(x, tuple) else (x,)
    y = ours.forward(*[a.copy() for a in xs])
    xts = [torch.from_numpy(a.copy()).requires_grad_(a.dtype.kind == "f") for a in xs]
    yt = theirs(*xts)
    _close(y, yt, f"{what}: output")
    g = np.cos(np.arange(y.size, dtype=np.float64)).reshape(y.shape)
    gin = ours.backward(g.copy())
    yt.backward(torch.from_numpy(g))
    gins = gin if isinstance(gin, tuple) else (gin,)
    for a, b in zip(gins, xts):
        if b.requires_grad:
            _close(a, b.grad, f"{what}: input gradient")
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        _close(p.data, q, f"{what}: {name}")
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        _close(p.grad, q.grad, f"{what}: {name}.grad")
    for (name, b), (_, c) in zip(ours.named_buffers(), theirs.named_buffers()):
        _close(b, c, f"{what}: buffer {name}")


# (constructor for s = torch.nn or fastnn.nn, input shape, [(attribute, new value)],
#  training mode)
LAYERS = {
    "LeakyReLU": (lambda s: s.LeakyReLU(0.1), (4, 5), [("negative_slope", 0.3),
                                                      ("negative_slope", -0.2)]),
    "ELU": (lambda s: s.ELU(), (4, 5), [("alpha", 0.5)]),
    "CELU": (lambda s: s.CELU(), (4, 5), [("alpha", 2.0)]),
    "Softplus": (lambda s: s.Softplus(), (4, 5), [("beta", 2.0), ("threshold", 0.5)]),
    "Hardtanh": (lambda s: s.Hardtanh(), (4, 5), [("min_val", -0.5), ("max_val", 0.3)]),
    "GELU": (lambda s: s.GELU(), (4, 5), [("approximate", "tanh")]),
    "Softmax": (lambda s: s.Softmax(dim=1), (4, 5), [("dim", 0)]),
    "Softmin": (lambda s: s.Softmin(dim=1), (4, 5), [("dim", 0)]),
    "LogSoftmax": (lambda s: s.LogSoftmax(dim=1), (4, 5), [("dim", 0)]),
    "Hardshrink": (lambda s: s.Hardshrink(), (4, 5), [("lambd", 0.1)]),
    "Softshrink": (lambda s: s.Softshrink(), (4, 5), [("lambd", 0.1)]),
    "Threshold": (lambda s: s.Threshold(0.1, 20.0), (4, 5), [("threshold", -0.3),
                                                              ("value", -1.0)]),
    "GLU": (lambda s: s.GLU(), (4, 6), [("dim", 0)]),
    "BatchNorm1d": (lambda s: s.BatchNorm1d(5), (6, 5), [("momentum", 0.01),
                                                         ("momentum", None), ("eps", 0.5),
                                                         ("track_running_stats", False)]),
    "BatchNorm2d": (lambda s: s.BatchNorm2d(3), (4, 3, 2, 3), [("momentum", 0.7),
                                                               ("eps", 0.25)]),
    "BatchNorm3d": (lambda s: s.BatchNorm3d(2), (2, 2, 2, 2, 3), [("momentum", 0.3)]),
    "LayerNorm": (lambda s: s.LayerNorm(5), (4, 5), [("eps", 0.5)]),
    "GroupNorm": (lambda s: s.GroupNorm(2, 4), (3, 4, 5), [("eps", 0.5)]),
    "InstanceNorm1d": (lambda s: s.InstanceNorm1d(3, affine=True, track_running_stats=True),
                       (2, 3, 5), [("eps", 0.5), ("momentum", 0.6)]),
    "InstanceNorm2d": (lambda s: s.InstanceNorm2d(3), (2, 3, 4, 3), [("eps", 0.5)]),
    "RMSNorm": (lambda s: s.RMSNorm(5, eps=1e-6), (4, 5), [("eps", 0.5), ("eps", None)]),
    "LocalResponseNorm": (lambda s: s.LocalResponseNorm(3), (2, 5, 4),
                          [("size", 2), ("alpha", 0.5), ("beta", 0.3), ("k", 2.0)]),
    "CrossMapLRN2d": (lambda s: s.CrossMapLRN2d(3), (2, 5, 3, 3),
                      [("size", 2), ("alpha", 0.5), ("beta", 0.3), ("k", 2.0)]),
    "Conv1d": (lambda s: s.Conv1d(2, 3, 3), (2, 2, 9),
               [("stride", (2,)), ("padding", (2,)), ("dilation", (2,))]),
    "Conv2d": (lambda s: s.Conv2d(2, 3, 3), (2, 2, 7, 8),
               [("stride", (2, 1)), ("padding", (2, 1)), ("dilation", (2, 2)),
                ("padding", "same"), ("stride", 2), ("padding", 1), ("dilation", 2)]),
    "Conv2d reflect": (lambda s: s.Conv2d(2, 3, 3, padding=1), (2, 2, 5, 4),
                       [("padding_mode", "reflect"), ("padding_mode", "circular")]),
    "TransformerEncoderLayer": (lambda s: s.TransformerEncoderLayer(4, 2, 8, dropout=0.0),
                                (3, 2, 4), [("norm_first", True)]),
    "Conv3d": (lambda s: s.Conv3d(2, 2, 2), (1, 2, 4, 5, 4),
               [("stride", (2, 1, 1)), ("padding", (1, 0, 1)), ("dilation", (1, 2, 1))]),
    "ConvTranspose1d": (lambda s: s.ConvTranspose1d(2, 3, 3), (2, 2, 5),
                        [("stride", (2,)), ("padding", (1,)), ("dilation", (2,))]),
    "ConvTranspose2d": (lambda s: s.ConvTranspose2d(2, 3, 3, stride=2), (2, 2, 4, 3),
                        [("stride", (1, 2)), ("padding", (1, 1)), ("output_padding", (1, 1)),
                         ("dilation", (2, 1)), ("stride", 3)]),
    "ConvTranspose3d": (lambda s: s.ConvTranspose3d(2, 2, 2), (1, 2, 3, 3, 2),
                        [("stride", (2, 1, 1)), ("padding", (1, 0, 0)), ("stride", 2),
                         ("dilation", 2)]),
    "MaxPool1d": (lambda s: s.MaxPool1d(2), (2, 3, 9),
                  [("kernel_size", 3), ("stride", 1), ("padding", 1), ("dilation", 2),
                   ("ceil_mode", True)]),
    "MaxPool2d": (lambda s: s.MaxPool2d(2), (2, 3, 7, 6),
                  [("kernel_size", 3), ("stride", (1, 2)), ("padding", 1), ("dilation", 2),
                   ("ceil_mode", True)]),
    "MaxPool3d": (lambda s: s.MaxPool3d(2), (1, 2, 5, 4, 5),
                  [("kernel_size", 3), ("stride", 1), ("padding", 1), ("ceil_mode", True)]),
    "AvgPool1d": (lambda s: s.AvgPool1d(2), (2, 3, 9),
                  [("kernel_size", 3), ("stride", 1), ("padding", 1), ("ceil_mode", True),
                   ("count_include_pad", False)]),
    "AvgPool2d": (lambda s: s.AvgPool2d(2, padding=1), (2, 3, 7, 6),
                  [("kernel_size", 3), ("stride", (1, 2)), ("ceil_mode", True),
                   ("count_include_pad", False), ("divisor_override", 3)]),
    "AvgPool3d": (lambda s: s.AvgPool3d(2, padding=1), (1, 2, 5, 4, 5),
                  [("kernel_size", 3), ("stride", 1), ("count_include_pad", False),
                   ("divisor_override", 5)]),
    "LPPool1d": (lambda s: s.LPPool1d(2, 2), (2, 3, 8), [("norm_type", 3.0),
                                                          ("kernel_size", 3)]),
    "LPPool2d": (lambda s: s.LPPool2d(2, 2), (2, 3, 6, 6), [("norm_type", 1.5),
                                                             ("stride", 1)]),
    "AdaptiveAvgPool1d": (lambda s: s.AdaptiveAvgPool1d(3), (2, 3, 8), [("output_size", 5)]),
    "AdaptiveAvgPool2d": (lambda s: s.AdaptiveAvgPool2d(3), (2, 3, 7, 6),
                          [("output_size", (2, 4))]),
    "AdaptiveMaxPool1d": (lambda s: s.AdaptiveMaxPool1d(3), (2, 3, 8), [("output_size", 5)]),
    "AdaptiveMaxPool2d": (lambda s: s.AdaptiveMaxPool2d(3), (2, 3, 7, 6),
                          [("output_size", (2, 4))]),
    "AdaptiveAvgPool3d": (lambda s: s.AdaptiveAvgPool3d(2), (1, 2, 4, 5, 3),
                          [("output_size", (3, 2, 1))]),
    "AdaptiveMaxPool3d": (lambda s: s.AdaptiveMaxPool3d(2), (1, 2, 4, 5, 3),
                          [("output_size", (3, 2, 1))]),
    "Flatten": (lambda s: s.Flatten(), (2, 3, 4, 2), [("start_dim", 2), ("end_dim", 2)]),
    "Unflatten": (lambda s: s.Unflatten(1, (2, 3)), (6, 6),
                  [("unflattened_size", (3, 2)), ("dim", 0)]),
    "Upsample": (lambda s: s.Upsample(scale_factor=2), (1, 2, 3, 4),
                 [("scale_factor", 3.0), ("mode", "bilinear")]),
    "Upsample bilinear": (lambda s: s.Upsample(scale_factor=2, mode="bilinear"), (1, 2, 3, 4),
                          [("scale_factor", (1.5, 3.0)), ("align_corners", True),
                           ("mode", "bicubic")]),
    "UpsamplingNearest2d": (lambda s: s.UpsamplingNearest2d(scale_factor=2), (1, 2, 3, 4),
                            [("scale_factor", 3.0)]),
    "UpsamplingBilinear2d": (lambda s: s.UpsamplingBilinear2d(scale_factor=2), (1, 2, 3, 4),
                             [("scale_factor", 3.0)]),
    "PixelShuffle": (lambda s: s.PixelShuffle(2), (1, 8, 2, 3), [("upscale_factor", 1)]),
    "PixelUnshuffle": (lambda s: s.PixelUnshuffle(2), (1, 2, 4, 4), [("downscale_factor", 1)]),
    "ChannelShuffle": (lambda s: s.ChannelShuffle(2), (1, 6, 2, 2), [("groups", 3)]),
    "Unfold": (lambda s: s.Unfold(2), (1, 2, 5, 5),
               [("kernel_size", 3), ("stride", 2), ("padding", 1), ("dilation", 2)]),
    "Fold": (lambda s: s.Fold((4, 5), 2), (1, 8, 12), [("output_size", (5, 4))]),
    "ZeroPad2d": (lambda s: s.ZeroPad2d(1), (1, 2, 3, 3), [("padding", (1, 0, 2, 1))]),
    "ConstantPad1d": (lambda s: s.ConstantPad1d(1, 0.5), (1, 2, 3),
                      [("padding", (2, 0)), ("value", -1.0)]),
    "ReflectionPad1d": (lambda s: s.ReflectionPad1d(1), (1, 2, 4), [("padding", (2, 1))]),
    "ReplicationPad2d": (lambda s: s.ReplicationPad2d(1), (1, 2, 3, 3),
                         [("padding", (1, 0, 2, 1))]),
    "CircularPad1d": (lambda s: s.CircularPad1d(1), (1, 2, 4), [("padding", (2, 1))]),
    # (the dropouts at p 0 and 1 only: their masks are random)
    "Dropout": (lambda s: s.Dropout(0.0), (4, 5), [("p", 1.0)]),
    "Dropout1d": (lambda s: s.Dropout1d(1.0), (2, 3, 4), [("p", 0.0)]),
    "Dropout2d": (lambda s: s.Dropout2d(0.0), (2, 3, 2, 2), [("p", 1.0)]),
    "Dropout3d": (lambda s: s.Dropout3d(1.0), (2, 3, 2, 2, 1), [("p", 0.0)]),
    "AlphaDropout": (lambda s: s.AlphaDropout(0.0), (4, 5), [("p", 1.0)]),
    "FeatureAlphaDropout": (lambda s: s.FeatureAlphaDropout(1.0), (2, 3, 4), [("p", 0.0)]),
    "Embedding": (lambda s: s.Embedding(6, 3), None,
                  [("max_norm", 0.5), ("padding_idx", 2), ("scale_grad_by_freq", True)]),
    "EmbeddingBag": (lambda s: s.EmbeddingBag(6, 3), None,
                     [("mode", "sum"), ("mode", "max"), ("max_norm", 0.5)]),
    "PairwiseDistance": (lambda s: s.PairwiseDistance(), (4, 3),
                         [("norm", 1.0), ("eps", 0.5), ("keepdim", True)]),
    "CosineSimilarity": (lambda s: s.CosineSimilarity(), (4, 3), [("dim", 0), ("eps", 3.0)]),
}

INDICES = {"Embedding": np.array([[0, 2, 5], [2, 2, 1]]),
           "EmbeddingBag": np.array([[0, 2, 5], [2, 2, 1]])}


# the layers and losses whose work runs through the backend's kernels: on every backend;
# the others compute on the host with NumPy whatever the backend (numpy's run only)
COMPILED = {"LeakyReLU", "ELU", "CELU", "Softplus", "Hardtanh", "GELU", "Softmax", "Softmin",
            "LogSoftmax", "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "LayerNorm",
            "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "Conv1d", "Conv2d",
            "Conv2d reflect", "ConvTranspose1d", "ConvTranspose2d", "MaxPool1d", "MaxPool2d",
            "AvgPool1d", "AvgPool2d", "LPPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d",
            "Dropout", "TransformerEncoderLayer", "MSELoss", "L1Loss", "HuberLoss",
            "SmoothL1Loss", "CrossEntropyLoss", "BCEWithLogitsLoss"}


def _on_backends(names):
    return [pytest.param(name, b, id=f"{b}-{name}") for name in sorted(names)
            for b in (fastnn.backends() if name in COMPILED else ["numpy"])]


@pytest.mark.parametrize("name,backend_name", _on_backends(LAYERS))
def test_a_layer_hyper_parameter_set_after_the_first_call_takes_effect(name, backend_name):
    with fastnn.use_backend(backend_name):
        _check_layer(name)


def _check_layer(name):
    ctor, shape, changes = LAYERS[name]
    x = INDICES[name] if shape is None else _x(shape)
    if name in ("PairwiseDistance", "CosineSimilarity"):
        x = (x, _x(shape, 1))
    for attr, value in changes:
        ours, theirs = _pair(ctor)
        _compare_pass(ours, theirs, x, f"{name} before")
        setattr(ours, attr, value)
        setattr(theirs, attr, value)
        _compare_pass(ours, theirs, x, f"{name}.{attr} = {value!r}")
        if "Norm" in name:   # and in eval mode (the running statistics)
            ours.eval()
            theirs.eval()
            _compare_pass(ours, theirs, x, f"{name}.{attr} = {value!r}, eval")


def _labels(n, c, seed=1):
    return np.random.default_rng(seed).integers(0, c, n)


# (constructor, [inputs as arrays: float ones get gradients], [(attribute, new value)])
LOSSES = {
    "MSELoss": (lambda s: s.MSELoss(), lambda: [_x((4, 3)), _x((4, 3), 1)],
                [("reduction", "sum"), ("reduction", "none")]),
    "L1Loss": (lambda s: s.L1Loss(), lambda: [_x((4, 3)), _x((4, 3), 1)],
               [("reduction", "sum"), ("reduction", "none")]),
    "HuberLoss": (lambda s: s.HuberLoss(), lambda: [_x((4, 3)), _x((4, 3), 1)],
                  [("delta", 0.3), ("reduction", "sum")]),
    "SmoothL1Loss": (lambda s: s.SmoothL1Loss(), lambda: [_x((4, 3)), _x((4, 3), 1)],
                     [("beta", 0.3), ("beta", 0.0), ("reduction", "none")]),
    "CrossEntropyLoss": (lambda s: s.CrossEntropyLoss(), lambda: [_x((5, 4)), _labels(5, 4)],
                         [("label_smoothing", 0.2), ("ignore_index", 1),
                          ("reduction", "sum"), ("reduction", "none")]),
    "NLLLoss": (lambda s: s.NLLLoss(), lambda: [_x((5, 4)), _labels(5, 4)],
                [("ignore_index", 1), ("reduction", "sum")]),
    "BCEWithLogitsLoss": (lambda s: s.BCEWithLogitsLoss(),
                          lambda: [_x((4, 3)), (_x((4, 3), 1) > 0).astype(np.float64)],
                          [("reduction", "sum"), ("reduction", "none")]),
    "BCELoss": (lambda s: s.BCELoss(),
                lambda: [1 / (1 + np.exp(-_x((4, 3)))), (_x((4, 3), 1) > 0) * 1.0],
                [("reduction", "sum")]),
    "KLDivLoss": (lambda s: s.KLDivLoss(reduction="batchmean"),
                  lambda: [_x((4, 3)), np.abs(_x((4, 3), 1))],
                  [("log_target", True), ("reduction", "sum")]),
    "PoissonNLLLoss": (lambda s: s.PoissonNLLLoss(), lambda: [_x((4, 3)),
                                                              np.abs(_x((4, 3), 1)) * 3],
                       [("log_input", False), ("full", True), ("eps", 0.5)]),
    "GaussianNLLLoss": (lambda s: s.GaussianNLLLoss(),
                        lambda: [_x((4, 3)), _x((4, 3), 1), np.abs(_x((4, 3), 2)) + 0.1],
                        [("full", True), ("eps", 0.5), ("reduction", "sum")]),
    "SoftMarginLoss": (lambda s: s.SoftMarginLoss(),
                       lambda: [_x((4, 3)), np.sign(_x((4, 3), 1))], [("reduction", "sum")]),
    "HingeEmbeddingLoss": (lambda s: s.HingeEmbeddingLoss(),
                           lambda: [_x((4, 3)), np.sign(_x((4, 3), 1))],
                           [("margin", 0.3), ("reduction", "sum")]),
    "MultiMarginLoss": (lambda s: s.MultiMarginLoss(), lambda: [_x((5, 4)), _labels(5, 4)],
                        [("p", 2), ("margin", 0.4), ("reduction", "sum")]),
    "MultiLabelSoftMarginLoss": (lambda s: s.MultiLabelSoftMarginLoss(),
                                 lambda: [_x((4, 3)), (_x((4, 3), 1) > 0) * 1.0],
                                 [("reduction", "sum")]),
    "MarginRankingLoss": (lambda s: s.MarginRankingLoss(),
                          lambda: [_x(5), _x(5, 1), np.sign(_x(5, 2))],
                          [("margin", 0.5), ("reduction", "sum")]),
    "CosineEmbeddingLoss": (lambda s: s.CosineEmbeddingLoss(),
                            lambda: [_x((4, 3)), _x((4, 3), 1), np.sign(_x(4, 2))],
                            [("margin", 0.2), ("reduction", "sum")]),
    "TripletMarginLoss": (lambda s: s.TripletMarginLoss(),
                          lambda: [_x((4, 3)), _x((4, 3), 1), _x((4, 3), 2)],
                          [("margin", 3.0), ("p", 1.0), ("eps", 0.5), ("swap", True)]),
}


@pytest.mark.parametrize("name,backend_name", _on_backends(LOSSES))
def test_a_loss_hyper_parameter_set_after_the_first_call_takes_effect(name, backend_name):
    with fastnn.use_backend(backend_name):
        _check_loss(name)


def _check_loss(name):
    ctor, make, changes = LOSSES[name]
    for attr, value in changes:
        ours, theirs = ctor(nn), ctor(torch.nn)
        for what in ("before", f"{attr} = {value!r}"):
            inputs = make()
            loss = ours.forward(*[a.copy() for a in inputs])
            ts = [torch.from_numpy(a.copy()).requires_grad_(a.dtype.kind == "f" and i == 0)
                  for i, a in enumerate(inputs)]
            tloss = theirs(*ts)
            _close(loss, tloss, f"{name} {what}: loss")
            g = np.asarray(np.cos(np.arange(tloss.numel(), dtype=np.float64)) + 2).reshape(
                tuple(tloss.shape))
            grads = ours.backward(g.copy())
            tloss.backward(torch.from_numpy(g))
            first = grads[0] if isinstance(grads, tuple) else grads
            _close(first, ts[0].grad, f"{name} {what}: gradient")
            setattr(ours, attr, value)
            setattr(theirs, attr, value)


# (constructor keywords, [(group key, new value)]): each change set between steps
OPTIMIZERS = {
    "SGD": (dict(lr=0.1), [("lr", 0.05), ("momentum", 0.9), ("weight_decay", 0.1),
                           ("maximize", True)]),
    "SGD momentum": (dict(lr=0.1, momentum=0.9),
                     [("momentum", 0.5), ("momentum", 0.0), ("dampening", 0.3),
                      ("nesterov", True), ("weight_decay", 0.1)]),
    "Adam": (dict(lr=0.01), [("lr", 0.1), ("betas", (0.5, 0.9)), ("eps", 0.1),
                             ("weight_decay", 0.1), ("amsgrad", True), ("maximize", True)]),
    "AdamW": (dict(lr=0.01), [("lr", 0.1), ("betas", (0.5, 0.9)), ("weight_decay", 0.3),
                              ("amsgrad", True)]),
    "Adamax": (dict(lr=0.01), [("lr", 0.1), ("betas", (0.5, 0.9)), ("eps", 0.1),
                               ("weight_decay", 0.1)]),
    "NAdam": (dict(lr=0.01), [("lr", 0.1), ("betas", (0.5, 0.9)), ("momentum_decay", 0.01),
                              ("weight_decay", 0.1), ("decoupled_weight_decay", True)]),
    "RAdam": (dict(lr=0.01), [("lr", 0.1), ("betas", (0.5, 0.9)), ("weight_decay", 0.1),
                              ("decoupled_weight_decay", True)]),
    "Adagrad": (dict(lr=0.1), [("lr", 0.3), ("lr_decay", 0.5), ("eps", 0.1),
                               ("weight_decay", 0.1)]),
    "Adadelta": (dict(lr=1.0), [("lr", 0.3), ("rho", 0.5), ("eps", 0.1),
                                ("weight_decay", 0.1)]),
    "RMSprop": (dict(lr=0.01), [("lr", 0.1), ("alpha", 0.5), ("eps", 0.1), ("momentum", 0.5),
                                ("centered", True), ("weight_decay", 0.1)]),
    "Rprop": (dict(lr=0.01), [("lr", 0.1), ("etas", (0.3, 1.5)), ("step_sizes", (1e-3, 0.02))]),
    "ASGD": (dict(lr=0.01), [("lr", 0.1), ("lambd", 0.1), ("alpha", 0.5), ("t0", 1.0),
                             ("weight_decay", 0.1)]),
    "Muon": (dict(lr=0.01), [("lr", 0.1), ("momentum", 0.5), ("nesterov", False),
                             ("weight_decay", 0.3), ("ns_steps", 3)]),
    "Adafactor": (dict(lr=0.01), [("lr", 0.1), ("beta2_decay", -0.5), ("eps", (1e-3, 1e-2)),
                                  ("d", 1.5), ("weight_decay", 0.1), ("maximize", True)]),
}


def _optim_twins(name, kwargs):
    values = [_x((3, 4), 5)] + ([] if name == "Muon" else [_x(4, 6)])  # (Muon: matrices)
    ours = [nn.Parameter(v.copy()) for v in values]
    theirs = [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in values]
    cls = name.split()[0]
    return (ours, getattr(optim, cls)(ours, **kwargs),
            theirs, getattr(torch.optim, cls)(theirs, **kwargs))


def _torch_step(ref):
    """ref.step(). A flag turned on after the first steps (Adam's amsgrad, RMSprop's
    momentum or centered) needs a state torch makes at a parameter's first step only: its
    step raises KeyError. fastnn's starts that state from zeros, what torch's first step
    would have made (max_exp_avg_sq, momentum_buffer, grad_avg): given those zeros,
    torch's step is the one compared."""
    for _ in range(3):
        try:
            return ref.step()
        except KeyError as missing:
            for p in ref.param_groups[0]["params"]:
                ref.state[p][missing.args[0]] = torch.zeros_like(p)
    raise AssertionError("torch's step kept failing")


def _steps(ours, opt, theirs, ref, n, what):
    for _ in range(n):
        for p, q in zip(ours, theirs):
            g = np.sin(3 * q.detach().numpy()) + 0.1
            p.grad = g.copy()
            q.grad = torch.from_numpy(g)
        opt.step()
        _torch_step(ref)
        for i, (p, q) in enumerate(zip(ours, theirs)):
            _close(p.data, q, f"{what}: parameter {i}")


@pytest.mark.parametrize("name,backend_name", [
    pytest.param(name, b, id=f"{b}-{name}") for name in sorted(OPTIMIZERS)
    for b in (["numpy"] if name in ("Adafactor", "Muon") else fastnn.backends())])
def test_an_optimizer_hyper_parameter_set_between_steps_takes_effect(name, backend_name):
    """(Adafactor and Muon compute on the host whatever the backend: numpy's run only.)"""
    with fastnn.use_backend(backend_name):
        _check_optimizer(name)


def _check_optimizer(name):
    kwargs, changes = OPTIMIZERS[name]
    for key, value in changes:
        ours, opt, theirs, ref = _optim_twins(name, kwargs)
        _steps(ours, opt, theirs, ref, 2, f"{name} before")
        for o in (opt, ref):
            o.param_groups[0][key] = value
        _steps(ours, opt, theirs, ref, 3, f"{name} {key} = {value!r}")


@pytest.mark.parametrize("make,shape,attr,value", [
    (lambda: nn.MaxPool2d(2), (1, 2, 6, 6), "kernel_size", 3),
    (lambda: nn.AvgPool3d(2), (1, 2, 4, 4, 4), "stride", 1),
    (lambda: nn.Conv2d(2, 3, 3), (1, 2, 6, 6), "padding", 1),
    (lambda: nn.AdaptiveAvgPool2d(3), (1, 2, 6, 6), "output_size", 2),
    (lambda: nn.ZeroPad2d(1), (1, 2, 3, 3), "padding", 2),
    (lambda: nn.Unfold(2), (1, 2, 4, 4), "stride", 2)],
    ids=["maxpool", "avgpool3d", "conv", "adaptive", "pad", "unfold"])
def test_a_geometry_set_between_forward_and_backward_refuses_that_backward(
        make, shape, attr, value):
    """The backward would read the new window against the old forward's saved arrays
    (PyTorch's graph keeps the old one): it raises, saying why; the same value set again
    changes nothing, and the next forward runs with the new one."""
    layer = make().double()
    x = _x(shape)
    y = layer(x)
    setattr(layer, attr, getattr(layer, attr))   # (the same value: nothing changes)
    layer.backward(np.ones_like(y))
    y = layer(x)
    setattr(layer, attr, value)
    with pytest.raises(RuntimeError, match=f"its {attr} was set to {value!r} after its last "
                                           f"forward"):
        layer.backward(np.ones_like(y))
    y = layer(x)
    assert layer.backward(np.ones_like(y)).shape == shape
