"""Findings of the layer-zoo fuzzer (random constructor arguments for the nn layers,
forward and backward against torch.nn). First the bad arguments and inputs for which
the layer raised a bare ValueError where PyTorch raises a RuntimeError, IndexError or
TypeError: each now raises fastnn.errors' two-type exception (a ValueError that is
also PyTorch's type), at construction or at the call, where torch raises at the call.
Then arguments PyTorch accepts that fastnn refused, and attributes it lacked.

Each case is one bad construction and call, written once for both libraries: ``s`` is
torch.nn or fastnn.nn, ``t`` turns a NumPy array into the library's array."""
import numpy as np
import pytest

from fastnn import nn

torch = pytest.importorskip("torch")  # (after fastnn: see fastnn's OpenMP warning)


def _x(*shape):
    return np.arange(float(np.prod(shape))).reshape(shape) / 7.0


CASES = {
    # RuntimeError in PyTorch
    "MaxPool1d padding > kernel/2": lambda s, t: s.MaxPool1d(1, padding=1)(t(_x(1, 2, 6))),
    "MaxPool2d padding > kernel/2": lambda s, t: s.MaxPool2d((1, 2), padding=1)(t(_x(1, 1, 3, 3))),
    "MaxPool3d padding > kernel/2": lambda s, t: s.MaxPool3d(1, padding=1)(t(_x(1, 2, 3, 3))),
    "AvgPool1d padding > kernel/2": lambda s, t: s.AvgPool1d(1, padding=1)(t(_x(1, 2, 5))),
    "AvgPool2d padding > kernel/2": lambda s, t: s.AvgPool2d((2, 1), padding=1)(t(_x(1, 2, 4, 5))),
    "AvgPool3d padding > kernel/2": lambda s, t: s.AvgPool3d((2, 2, 1), padding=1)(
        t(_x(1, 2, 4, 2, 2))),
    "AvgPool2d divisor_override=0": lambda s, t: s.AvgPool2d(2, divisor_override=0)(
        t(_x(1, 1, 4, 4))),
    "CELU alpha=0": lambda s, t: s.CELU(alpha=0.0)(t(_x(2, 3))),
    "GELU approximate='bad'": lambda s, t: s.GELU(approximate="bad")(t(_x(2, 3))),
    "Softshrink lambd<0": lambda s, t: s.Softshrink(-0.5)(t(_x(2, 5))),
    "RNNCell nonlinearity='bad'": lambda s, t: s.RNNCell(3, 4, nonlinearity="bad")(t(_x(2, 3))),
    "PReLU channels": lambda s, t: s.PReLU(3)(t(_x(3))),
    "Unfold kernel larger than input": lambda s, t: s.Unfold(5, stride=2)(t(_x(1, 1, 3, 3))),
    "Fold block count": lambda s, t: s.Fold(4, 2, dilation=2, stride=2)(t(_x(1, 8, 2))),
    "Fold channels not divisible": lambda s, t: s.Fold(4, 2)(t(_x(2, 7, 9))),
    "Fold rank": lambda s, t: s.Fold(4, 2)(t(_x(2, 3, 4, 5))),
    "FractionalMaxPool3d pool too large": lambda s, t: s.FractionalMaxPool3d(
        2, output_size=2)(t(_x(1, 1, 3, 3, 3))),
    "FractionalMaxPool2d pool too large": lambda s, t: s.FractionalMaxPool2d(
        2, output_size=3)(t(_x(1, 1, 3, 3))),
    # TypeError in PyTorch
    "GELU approximate=None": lambda s, t: s.GELU(approximate=None)(t(_x(2, 3))),
    "Flatten float start_dim": lambda s, t: s.Flatten(2.0)(t(_x(2, 3, 4))),
    "Unflatten float dim": lambda s, t: s.Unflatten(0.0, (1, 2))(t(_x(2, 3))),
    "GLU float dim": lambda s, t: s.GLU(1.0)(t(_x(2, 4))),
    "Softmax float dim": lambda s, t: s.Softmax(0.0)(t(_x(2, 4))),
    "Softmin float dim": lambda s, t: s.Softmin(0.0)(t(_x(2, 4))),
    "LogSoftmax float dim": lambda s, t: s.LogSoftmax(0.0)(t(_x(2, 4))),
    "CosineSimilarity float dim": lambda s, t: s.CosineSimilarity(1.0)(t(_x(2, 4)), t(_x(2, 4))),
    "ReflectionPad1d float padding": lambda s, t: s.ReflectionPad1d((1.0, 2))(t(_x(1, 2, 5))),
    "ZeroPad2d float padding": lambda s, t: s.ZeroPad2d(3.0)(t(_x(1, 2, 5, 5))),
    "TransformerEncoder float num_layers": lambda s, t: s.TransformerEncoder(
        s.TransformerEncoderLayer(4, 2), 2.0),
    "LayerNorm float normalized_shape": lambda s, t: s.LayerNorm(4.0),
    "LayerNorm float in normalized_shape": lambda s, t: s.LayerNorm((2, 4.0)),
    "Upsample float size": lambda s, t: s.Upsample(size=4.0)(t(_x(1, 1, 2))),
    "NLLLoss float ignore_index": lambda s, t: s.NLLLoss(ignore_index=1.5)(
        t(_x(2, 3)), t(np.array([0, 1]))),
    "CrossEntropyLoss float ignore_index": lambda s, t: s.CrossEntropyLoss(
        ignore_index=1.5)(t(_x(2, 3)), t(np.array([0, 1]))),
    "LayerNorm negative normalized_shape": lambda s, t: s.LayerNorm(-1),
    "Embedding float padding_idx": lambda s, t: s.Embedding(3, 2, padding_idx=1.5),
    # IndexError in PyTorch
    "Softmax dim out of range": lambda s, t: s.Softmax(dim=2)(t(_x(0, 3))),
    "LogSoftmax dim out of range": lambda s, t: s.LogSoftmax(dim=2)(t(_x(2, 3))),
    "Softmin dim out of range": lambda s, t: s.Softmin(dim=2)(t(_x(5))),
    "CosineSimilarity dim out of range": lambda s, t: s.CosineSimilarity(dim=1)(
        t(_x(4)), t(_x(4))),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_layer_arguments_raise_pytorchs_type_that_is_a_value_error(name):
    case = CASES[name]
    with pytest.raises(Exception) as theirs:
        case(torch.nn, lambda a: torch.from_numpy(a))
    expected = theirs.type
    assert expected in (RuntimeError, IndexError, TypeError), theirs.value
    with pytest.raises(expected) as ours:
        case(nn, lambda a: a)
    assert isinstance(ours.value, ValueError), ours.value


LEGACY = [name for name in ("BCELoss", "BCEWithLogitsLoss", "CosineEmbeddingLoss",
                            "CrossEntropyLoss", "HingeEmbeddingLoss", "KLDivLoss", "L1Loss",
                            "MSELoss", "MarginRankingLoss", "MultiLabelMarginLoss",
                            "MultiLabelSoftMarginLoss", "MultiMarginLoss", "NLLLoss",
                            "PoissonNLLLoss", "SmoothL1Loss", "SoftMarginLoss",
                            "TripletMarginLoss")]


@pytest.mark.parametrize("name", LEGACY)
def test_loss_classes_take_pytorchs_deprecated_size_average_and_reduce(name):
    """PyTorch's loss classes accept the deprecated size_average/reduce (overriding
    reduction, with a warning); fastnn's refused any value but None (F.* took them)."""
    for size_average, reduce in [(False, None), (None, False), (True, True), (0, 1)]:
        for reduction in ("mean", "none"):
            with pytest.warns(UserWarning, match="size_average and reduce"):
                theirs = getattr(torch.nn, name)(size_average=size_average, reduce=reduce,
                                                 reduction=reduction)
            with pytest.warns(UserWarning, match="size_average and reduce"):
                ours = getattr(nn, name)(size_average=size_average, reduce=reduce,
                                         reduction=reduction)
            assert ours.reduction == theirs.reduction


def test_legacy_reduction_gives_pytorchs_loss():
    x, y = _x(3, 4) - 0.5, np.cos(_x(3, 4))
    with pytest.warns(UserWarning):
        ours = nn.MSELoss(size_average=False)(x, y)
    with pytest.warns(UserWarning):
        theirs = torch.nn.MSELoss(size_average=False)(torch.from_numpy(x), torch.from_numpy(y))
    np.testing.assert_allclose(ours, theirs.item(), rtol=1e-12)
    with pytest.warns(UserWarning):
        layer = nn.KLDivLoss(reduce=False, reduction="batchmean")
    assert layer.reduction == "none"
    assert np.shape(layer(np.log(_x(3, 4) + 1), _x(3, 4) / 20)) == (3, 4)


def test_hardtanh_takes_pytorchs_deprecated_min_value_and_max_value():
    """torch.nn.Hardtanh(min_value=, max_value=) (deprecated names of min_val/max_val,
    with a FutureWarning) was a TypeError (unexpected keyword)."""
    x = _x(2, 5) - 0.6
    with pytest.warns(FutureWarning, match="deprecated and renamed"):
        theirs = torch.nn.Hardtanh(min_value=-0.25, max_value=0.5)
    with pytest.warns(FutureWarning, match="deprecated and renamed"):
        ours = nn.Hardtanh(min_value=-0.25, max_value=0.5)
    assert (ours.min_val, ours.max_val) == (theirs.min_val, theirs.max_val)
    np.testing.assert_array_equal(ours(x), theirs(torch.from_numpy(x)).numpy())


LAZY = {"LazyLinear": (3,), "LazyConv1d": (2, 3), "LazyConv2d": (4, 3),
        "LazyConv3d": (2, 1), "LazyConvTranspose1d": (2, 2), "LazyConvTranspose2d": (4, 3),
        "LazyConvTranspose3d": (2, 2), "LazyBatchNorm1d": (), "LazyBatchNorm2d": (),
        "LazyBatchNorm3d": (), "LazyInstanceNorm1d": (), "LazyInstanceNorm2d": (),
        "LazyInstanceNorm3d": ()}


@pytest.mark.parametrize("name", sorted(LAZY))
def test_lazy_layers_have_pytorchs_attributes_before_the_first_input(name):
    """A lazy layer's hyper-parameters (out_channels, kernel_size, eps, momentum, ...) are
    attributes from construction, its input size 0, as PyTorch's (they were missing
    until the first input: AttributeError); reset_parameters() does nothing then."""
    kwargs = {"groups": 2, "stride": 2} if "Conv" in name else {}
    if "Norm" in name:
        kwargs = {"momentum": None, "eps": 0.1}
    theirs = getattr(torch.nn, name)(*LAZY[name], **kwargs)
    ours = getattr(nn, name)(*LAZY[name], **kwargs)
    plain = {key: value for key, value in vars(theirs).items()
             if not key.startswith("_") and key != "training"
             and isinstance(value, (bool, int, float, str, tuple, type(None)))}
    assert plain and {key: getattr(ours, key) for key in plain} == plain
    theirs.reset_parameters()
    ours.reset_parameters()
    assert ours.state_dict() == {}


@pytest.mark.parametrize("name", ["Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"])
def test_upsample_layers_have_pytorchs_name_attribute(name):
    assert getattr(nn, name)(scale_factor=2).name == getattr(torch.nn, name)(scale_factor=2).name


def _pred_and_classes(t):
    return t(_x(3, 4) - 0.5), t(np.array([0, 3, 1]))


ELEMENTWISE_MEAN = {   # loss class: (its arguments, inputs from t)
    "MSELoss": ((), lambda t: (t(_x(2, 3)), t(_x(2, 3)[::-1].copy()))),
    "L1Loss": ((), lambda t: (t(_x(2, 3)), t(np.zeros((2, 3))))),
    "CrossEntropyLoss": ((), _pred_and_classes),
    "NLLLoss": ((), _pred_and_classes),
    "KLDivLoss": ((), lambda t: (t(-_x(2, 3)), t(np.full((2, 3), 0.25)))),
    "BCELoss": ((), lambda t: (t(np.full((2, 3), 0.25)), t(np.ones((2, 3))))),
    "SmoothL1Loss": ((), lambda t: (t(_x(2, 3)), t(np.ones((2, 3))))),
    # PyTorch's functional forms of these check the reduction and refuse it
    "PoissonNLLLoss": ((), lambda t: (t(_x(2, 3)), t(np.ones((2, 3))))),
    "MultiLabelSoftMarginLoss": ((), lambda t: (t(_x(2, 3)), t(np.ones((2, 3))))),
    "GaussianNLLLoss": ((), lambda t: (t(_x(2, 3)), t(np.ones((2, 3))),
                                       t(np.ones((2, 3))))),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE_MEAN))
def test_loss_classes_take_the_deprecated_elementwise_mean_where_pytorch_does(name):
    import warnings
    args, inputs = ELEMENTWISE_MEAN[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            expected = float(getattr(torch.nn, name)(*args, reduction="elementwise_mean")(
                *inputs(torch.from_numpy)))
        except ValueError:
            with pytest.raises(ValueError):
                getattr(nn, name)(*args, reduction="elementwise_mean")(*inputs(np.asarray))
            return
    with pytest.warns(UserWarning, match="elementwise_mean"):
        loss = getattr(nn, name)(*args, reduction="elementwise_mean")
    assert loss.reduction == "mean"
    np.testing.assert_allclose(float(loss(*inputs(np.asarray))), expected, rtol=1e-12)
