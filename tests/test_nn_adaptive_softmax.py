"""AdaptiveLogSoftmaxWithLoss against PyTorch: output, loss, input and every parameter
gradient (float32 and float64, every backend), for the loss's gradient, the output's and
both; log_prob and predict; zero-width tail projections, empty clusters, unbatched and
empty batches; repr, state dict keys and PyTorch's errors."""
import numpy as np
import pytest

from fastnn.nn.adaptive_softmax import AdaptiveLogSoftmaxWithLoss

import torch  # noqa: E402  (after fastnn: see fastnn's OpenMP warning)

from conftest import assert_close
from nn_torch_helpers import TORCH_DTYPES

torch.set_num_threads(1)

# PyTorch warns when it initialises the zero-size weights of a zero-width projection
pytestmark = pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")


def _pair(dtype, in_features, n_classes, cutoffs, **options):
    """(the fastnn module, its PyTorch twin with the same weights)."""
    ours = AdaptiveLogSoftmaxWithLoss(in_features, n_classes, cutoffs, dtype=dtype, **options)
    twin = torch.nn.AdaptiveLogSoftmaxWithLoss(in_features, n_classes, cutoffs, **options)
    twin = twin.to(TORCH_DTYPES[np.dtype(dtype)])
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    return ours, twin


def _check_grads(ours, twin, dtype):
    for (name, p), (_, q) in zip(ours.named_parameters(), twin.named_parameters()):
        # PyTorch leaves a cluster no target reached without a gradient; fastnn's is 0
        expected = np.zeros(p.shape) if q.grad is None else q.grad.numpy()
        assert_close(p.grad, expected, dtype, err_msg=name)


# (in_features, n_classes, cutoffs, options, targets): the second has zero-width tail
# projections (8 // 4**2 == 0) and a cluster no target falls in
CASES = [
    (6, 12, [3, 7], dict(div_value=2.0, head_bias=True), [0, 4, 8, 11, 2, 5, 9]),
    (8, 20, [4, 8, 12], dict(), [0, 1, 13, 19, 3, 12, 2, 2]),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_forward_backward_log_prob_predict_match_torch(backend, dtype, case):
    in_features, n_classes, cutoffs, options, targets = CASES[case]
    rng = np.random.default_rng(case)
    ours, twin = _pair(dtype, in_features, n_classes, cutoffs, **options)
    t = np.array(targets)
    x = rng.standard_normal((t.size, in_features)).astype(dtype)
    g_out = rng.standard_normal(t.size).astype(dtype)
    # the loss's gradient (the usual backward()), a scaled one, the output's, both
    for grad, grad_output in [(None, None), (2.5, None), (None, g_out), (-0.5, g_out)]:
        tx = torch.from_numpy(x).requires_grad_(True)
        out, ref = ours(x, t), twin(tx, torch.from_numpy(t))
        assert type(out).__name__ == "_ASMoutput" and out._fields == ("output", "loss")
        assert out.output.dtype == dtype and out.output.shape == (t.size,)
        assert_close(out.output, ref.output.detach().numpy(), dtype)
        assert isinstance(out.loss, np.float64)
        assert_close(out.loss, ref.loss.item(), dtype)
        if grad_output is None:
            objective = ref.loss * (1.0 if grad is None else grad)
        else:   # the output's gradient, plus the loss's when given
            objective = (ref.output * torch.from_numpy(grad_output)).sum()
            objective = objective if grad is None else objective + ref.loss * grad
        objective.backward()
        grad_x = ours.backward(grad, grad_output=grad_output)
        assert grad_x.dtype == dtype and grad_x.shape == x.shape
        assert_close(grad_x, tx.grad.numpy(), dtype)
        _check_grads(ours, twin, dtype)   # accumulated over the four steps in both
    tx = torch.from_numpy(x)
    assert_close(ours.log_prob(x), twin.log_prob(tx).detach().numpy(), dtype)
    np.testing.assert_array_equal(ours.predict(x), twin.predict(tx).numpy())
    assert ours.predict(x).dtype == np.int64


def test_unbatched_and_empty_batch(dtype):
    ours, twin = _pair(dtype, 5, 9, [2, 6], head_bias=True)
    x = np.random.default_rng(1).standard_normal(5).astype(dtype)
    tx = torch.from_numpy(x).requires_grad_(True)
    out, ref = ours(x, 7), twin(tx, torch.tensor(7))
    assert out.output.shape == () and out.output.dtype == dtype
    assert_close(out.output, ref.output.item(), dtype)
    ref.loss.backward()
    assert_close(ours.backward(), tx.grad.numpy(), dtype)
    _check_grads(ours, twin, dtype)
    empty = ours(np.zeros((0, 5), dtype), np.zeros(0, np.int64))
    assert empty.output.shape == (0,) and np.isnan(empty.loss)   # PyTorch's mean of nothing
    before = [p.grad.copy() for p in ours.parameters()]
    assert ours.backward().shape == (0, 5)
    for p, b in zip(ours.parameters(), before):
        np.testing.assert_array_equal(p.grad, b)


def test_predict_takes_the_tail_for_rows_whose_head_picks_a_cluster():
    ours, twin = _pair(np.float64, 4, 10, [2, 5])
    ours.head.weight.data[:] = 0
    ours.head.weight.data[3, 0] = 5.0   # cluster 1's entry wins where x[:, 0] > 0
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    x = np.random.default_rng(2).standard_normal((12, 4))
    predicted = ours.predict(x)
    np.testing.assert_array_equal(predicted, twin.predict(torch.from_numpy(x)).numpy())
    np.testing.assert_array_equal(predicted, ours.log_prob(x).argmax(1))
    assert (predicted >= 5).any() and (predicted < 2).any()


def test_repr_state_dict_and_zero_width_projections():
    ours = AdaptiveLogSoftmaxWithLoss(8, 20, [4, 8, 12], head_bias=True)
    twin = torch.nn.AdaptiveLogSoftmaxWithLoss(8, 20, [4, 8, 12], head_bias=True)
    assert repr(ours) == repr(twin)
    state = ours.state_dict()
    assert list(state) == list(twin.state_dict())
    assert [v.shape for v in state.values()] == [tuple(v.shape)
                                                 for v in twin.state_dict().values()]
    assert state["tail.1.0.weight"].shape == (0, 8)   # 8 // 4**2: uniform within the cluster
    assert (ours.shortlist_size, ours.n_clusters, ours.head_size) == (4, 3, 7)
    assert ours.cutoffs == [4, 8, 12, 20]
    ours.load_state_dict({k: v.numpy() for k, v in twin.state_dict().items()})
    assert len(ours.parameters()) == 8


def test_errors_as_pytorch():
    for cutoffs in ([], [5, 3], [0, 3], [3, 10], [3, 3], [2.5]):
        with pytest.raises(ValueError, match="cutoffs should be"):
            AdaptiveLogSoftmaxWithLoss(8, 10, cutoffs)
    asm = AdaptiveLogSoftmaxWithLoss(8, 10, [3, 6])
    with pytest.raises(RuntimeError, match="before forward"):
        asm.backward()
    x = np.zeros((4, 8), np.float32)
    good = np.array([0, 4, 7, 9])
    asm(x, good)
    expected = asm.backward()
    bad = [
        (RuntimeError, r"Target values should be in \[0, 9\], but values in range \[0, 10\]",
         x, np.array([0, 1, 10, 2])),
        (RuntimeError, r"in range \[-1, 3\]", x, np.array([0, -1, 3, 2])),
        (RuntimeError, "same size in the batch dimension", x, good[:3]),
        (RuntimeError, "1D target tensor expects 2D input", x.reshape(4, 2, 4), good),
        (RuntimeError, "0D target tensor expects 1D input", x, np.array(3)),
        (RuntimeError, "multi-target not supported", x, good.reshape(4, 1)),
        (RuntimeError, "expected input with 8 features", x[:, :5], good),
        (TypeError, "integer class labels", x, good.astype(np.float32)),
        (TypeError, "does not match the layer's parameters", x.astype(np.float64), good),
    ]
    for kind, message, inp, target in bad:
        with pytest.raises(kind, match=message):
            asm(inp, target)
    # the failed calls left the last forward's state: its backward is unchanged
    np.testing.assert_array_equal(asm.backward(), expected)
    with pytest.raises(ValueError, match="grad_output of shape"):
        asm.backward(grad_output=np.ones(3, np.float32))
    with pytest.raises(ValueError, match="to be a number"):
        asm.backward(np.ones(4))
    with pytest.raises(RuntimeError, match=r"expected input of shape \(N, 8\)"):
        asm.log_prob(np.zeros(8, np.float32))
