"""Probes of the less common losses against PyTorch's contract (the lossrest audit)."""
import numpy as np
import pytest

from fastnn import nn

R = np.random.default_rng(0)


def _f(*shape):
    return R.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("make, args", [
    (lambda: nn.PoissonNLLLoss(), lambda: (_f(3, 4), _f(3, 5))),
    (lambda: nn.KLDivLoss(), lambda: (_f(3, 4), _f(3, 5))),
    (lambda: nn.HuberLoss(), lambda: (_f(3, 4), _f(3, 5))),
    (lambda: nn.SmoothL1Loss(), lambda: (_f(3, 4), _f(3, 5))),
    (lambda: nn.SoftMarginLoss(), lambda: (_f(3, 4), _f(3, 5))),
    (lambda: nn.HingeEmbeddingLoss(), lambda: (_f(3, 4), _f(3, 5))),
    (lambda: nn.MultiLabelSoftMarginLoss(), lambda: (_f(3, 4), _f(3, 5))),
    (lambda: nn.BCEWithLogitsLoss(pos_weight=np.ones(3, np.float32)),
     lambda: (_f(2, 4), np.ones((2, 4), np.float32))),
    (lambda: nn.MarginRankingLoss(), lambda: (_f(3), _f(4), np.ones(3, np.float32))),
    (lambda: nn.CosineEmbeddingLoss(), lambda: (_f(2, 3, 4), _f(2, 3, 4), np.ones(2, np.int64))),
    (lambda: nn.CosineEmbeddingLoss(), lambda: (_f(2, 4), _f(2, 4), np.ones(3, np.int64))),
    (lambda: nn.CosineEmbeddingLoss(), lambda: (_f(2, 4), _f(2, 3), np.ones(2, np.int64))),
    (lambda: nn.TripletMarginLoss(), lambda: (_f(3, 4), _f(4), _f(3, 4))),
    (lambda: nn.MultiLabelMarginLoss(), lambda: (_f(2, 4), np.zeros((2, 3), np.int64))),
    (lambda: nn.MultiLabelMarginLoss(), lambda: (_f(2, 4), np.full((2, 4), 4, np.int64))),
    (lambda: nn.GaussianNLLLoss(), lambda: (_f(2, 4), _f(3, 4), np.ones((2, 4), np.float32))),
    (lambda: nn.NLLLoss(), lambda: (_f(2, 3, 4), np.zeros((2, 5), np.int64))),
    (lambda: nn.NLLLoss(weight=np.ones(4, np.float32)),
     lambda: (_f(2, 3, 4), np.zeros((2, 4), np.int64))),
    (lambda: nn.CrossEntropyLoss(), lambda: (_f(2, 3, 4), _f(2, 3, 5))),
])
def test_shape_mismatch_is_a_runtime_error_too(make, args):
    """PyTorch raises a RuntimeError for these mismatched shapes (and an out-of-range
    MultiLabelMarginLoss target); fastnn's ValueError is one too, so a torch-style
    ``except RuntimeError`` catches it (it was a bare ValueError)."""
    with pytest.raises(RuntimeError) as info:
        make()(*args())
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("layer, shape, error", [
    (lambda: nn.Flatten(1, 3), (2, 3, 4), IndexError),     # end_dim out of range
    (lambda: nn.Flatten(-4, -1), (2, 3, 4), IndexError),   # start_dim out of range
    (lambda: nn.Flatten(2, 1), (2, 3, 4), RuntimeError),   # start_dim after end_dim
    (lambda: nn.Flatten(-1, 0), (2, 3, 4), RuntimeError),
    (lambda: nn.Unflatten(2, (1, 2)), (2, 3), IndexError),
    (lambda: nn.Unflatten(-3, (1, 2)), (2, 3), IndexError),
    (lambda: nn.Unflatten(1, (2, 2)), (2, 3), RuntimeError),   # sizes don't multiply up
    (lambda: nn.Unflatten(1, (0, -1)), (2, 3), RuntimeError),
])
def test_flatten_unflatten_refuse_with_pytorchs_types(layer, shape, error):
    """PyTorch's IndexError for a dim out of range and RuntimeError for dims in the
    wrong order or sizes that do not multiply up; fastnn's ValueError is that type too
    (it was a bare ValueError)."""
    with pytest.raises(error) as info:
        layer()(np.zeros(shape, np.float32))
    assert isinstance(info.value, ValueError)


def test_bilinear_mismatched_inputs_are_a_runtime_error_too():
    with pytest.raises(RuntimeError) as info:
        nn.Bilinear(3, 4, 5)(_f(2, 3), _f(3, 4))
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("layer, shape, error", [
    (lambda: nn.GLU(4), (2, 4, 2, 2), IndexError),           # dim out of range
    (lambda: nn.GLU(-1), (2, 3), RuntimeError),              # odd halving size
    (lambda: nn.PixelShuffle(3), (1, 4, 2, 2), RuntimeError),
    (lambda: nn.PixelShuffle(1), (4, 4), RuntimeError),      # fewer than 3 dims
    (lambda: nn.PixelUnshuffle(2), (2, 8, 3, 3), RuntimeError),
    (lambda: nn.ChannelShuffle(3), (2, 8, 3, 3), RuntimeError),
    (lambda: nn.RMSNorm(4), (2, 3), RuntimeError),
])
def test_host_layers_refuse_with_pytorchs_types(layer, shape, error):
    """The type PyTorch raises for the same input, as well as fastnn's ValueError (it
    was a bare ValueError)."""
    with pytest.raises(error) as info:
        layer()(np.zeros(shape, np.float32))
    assert isinstance(info.value, ValueError)


def test_rrelu_bounds_in_the_wrong_order_are_a_runtime_error_too():
    with pytest.raises(RuntimeError) as info:
        nn.RReLU(0.5, 0.1)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("make", [
    lambda: nn.HuberLoss(delta=0.0),
    lambda: nn.HuberLoss(delta=-1.0),
    lambda: nn.SmoothL1Loss(beta=-1.0),
    lambda: nn.CrossEntropyLoss(label_smoothing=1.5),
])
def test_out_of_bounds_loss_options_are_a_runtime_error_too(make):
    """PyTorch raises a RuntimeError for these (fastnn already at construction)."""
    with pytest.raises(RuntimeError) as info:
        make()
    assert isinstance(info.value, ValueError)


def test_multi_margin_refusals_are_a_runtime_error_too():
    with pytest.raises(RuntimeError):
        nn.MultiMarginLoss()(_f(2, 3, 4), np.zeros((2, 3), np.int64))
    with pytest.raises(RuntimeError):
        nn.MultiMarginLoss(weight=np.ones(3, np.float32))(_f(2, 4), np.zeros(2, np.int64))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_poisson_nll_takes_eps_zero_as_pytorch(dtype):
    """eps=0 is PyTorch's exact log(pred) (it was refused): inf at pred = 0 against a
    positive count, NaN against a zero count, without NumPy warnings."""
    x = np.array([0.0, 0.5, 0.0], dtype)
    y = np.array([1.0, 2.0, 0.0], dtype)
    loss = nn.PoissonNLLLoss(log_input=False, eps=0.0, reduction="none")
    with np.errstate(all="raise"):
        out = loss(x, y)
        grad = loss.backward()
    np.testing.assert_allclose(out, [np.inf, 0.5 - 2 * np.log(dtype(0.5)), np.nan],
                               rtol=1e-6)
    np.testing.assert_allclose(grad, [-np.inf, -3.0, np.nan])


@pytest.mark.parametrize("cutoffs", [[3.0], [2, 3.0], ["a"]])
def test_adaptive_softmax_non_int_cutoffs_are_a_type_error(cutoffs):
    """PyTorch raises TypeError for whole floats (its Linear gets a float size) and
    non-numbers; fastnn accepted the floats and raised a bare ValueError for the rest."""
    with pytest.raises(TypeError) as info:
        nn.AdaptiveLogSoftmaxWithLoss(8, 10, cutoffs)
    assert isinstance(info.value, ValueError)


def test_adaptive_softmax_fractional_cutoff_stays_a_value_error():
    with pytest.raises(ValueError, match="cutoffs should be"):
        nn.AdaptiveLogSoftmaxWithLoss(8, 10, [3.5])


def test_cross_entropy_ignore_index_with_probabilities_is_a_runtime_error_too():
    p = np.full((3, 4), 0.25, np.float32)
    with pytest.raises(RuntimeError) as info:
        nn.CrossEntropyLoss(ignore_index=1)(_f(3, 4), p)
    assert isinstance(info.value, ValueError)


def test_multilabel_soft_margin_refusals_carry_pytorchs_types():
    """A weight that does not broadcast: PyTorch's RuntimeError; a 0-d pred: its
    IndexError (each also fastnn's ValueError; both were bare ValueErrors)."""
    with pytest.raises(RuntimeError) as info:
        nn.MultiLabelSoftMarginLoss(weight=np.ones((5, 1), np.float32))(
            _f(3, 5), np.ones((3, 5), np.float32))
    assert isinstance(info.value, ValueError)
    with pytest.raises(IndexError) as info:
        nn.MultiLabelSoftMarginLoss()(np.ones((), np.float32), np.ones((), np.float32))
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("shape", [(2, 3, 4), (2, 0), (0,)])
def test_multilabel_margin_refused_pred_is_a_runtime_error_too(shape):
    with pytest.raises(RuntimeError) as info:
        nn.MultiLabelMarginLoss()(np.ones(shape, np.float32), np.zeros(shape, np.int64))
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("sizes", [(-2, -2), (-1, -1), ()])
def test_unflatten_bad_sizes_are_a_runtime_error_too(sizes):
    with pytest.raises(RuntimeError) as info:
        nn.Unflatten(1, sizes)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("label", [3, -1])
def test_linear_cross_entropy_labels_out_of_range_are_an_index_error_too(label):
    """As CrossEntropyLoss's: PyTorch's IndexError as well as fastnn's ValueError."""
    loss = nn.LinearCrossEntropyLoss(5, 3)
    with pytest.raises(IndexError) as info:
        loss(_f(4, 5), np.full(4, label, np.int64))
    assert isinstance(info.value, ValueError)


def test_gaussian_nll_takes_eps_zero_as_pytorch():
    """eps=0 (no clamp) is accepted, as PyTorch's (it was refused); a var of 0 then gives
    PyTorch's inf/NaN values and gradients, without NumPy warnings."""
    x = np.array([[0.5, 1.0], [0.0, 2.0]])
    t = np.array([[0.5, 0.0], [1.0, 2.0]])
    v = np.array([[0.0, 0.0], [1.0, 0.0]])
    loss = nn.GaussianNLLLoss(eps=0.0, reduction="none")
    with np.errstate(all="raise"):
        out = loss(x, t, v)
        gx, gt, gv = loss.backward()
    np.testing.assert_array_equal(out, [[np.nan, np.nan], [0.5, np.nan]])
    np.testing.assert_array_equal(gx, [[np.nan, np.inf], [-1.0, np.nan]])
    np.testing.assert_array_equal(gv, [[np.nan, np.nan], [0.0, np.nan]])
