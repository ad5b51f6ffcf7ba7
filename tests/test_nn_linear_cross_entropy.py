"""LinearCrossEntropyLoss against PyTorch: loss, input gradient and the linear layer's
weight and bias gradients (float32 and float64, every backend), every reduction, class
weights, ignore_index, label smoothing, probabilities, K-dimensional out_features,
unbatched input, several row chunks, training (gradients with the loss) and eval mode
(recomputed in backward); the chunks' logits sizes; repr, state dict keys and errors."""
import numpy as np
import pytest

from fastnn.nn.linear_cross_entropy import LinearCrossEntropyLoss

import torch  # noqa: E402  (after fastnn: see fastnn's OpenMP warning)

from conftest import assert_close
from nn_torch_helpers import TORCH_DTYPES

torch.set_num_threads(1)

IN, C = 4, 5
WEIGHT = [0.5, 1.0, 2.0, 0.0, 1.5]

# (options, out_features, target kind, batch (None: one unbatched sample))
CASES = {
    "plain": (dict(bias=True), (), "labels", 7),
    "weight-ignore-smoothing": (dict(weight=WEIGHT, ignore_index=2, label_smoothing=0.2),
                                (), "labels", 7),
    "kdim-bias-ignored-default": (dict(bias=True, weight=WEIGHT), (3, 2), "labels", 3),
    "kdim-probabilities": (dict(label_smoothing=0.1), (2,), "probabilities", 4),
    "unbatched": (dict(bias=True, label_smoothing=0.3), (), "labels", None),
}


def _pair(dtype, out_features, reduction, options):
    dtype = np.dtype(dtype)
    ours = LinearCrossEntropyLoss(IN, C, out_features=out_features, dtype=dtype,
                                  reduction=reduction, **options)
    torch_options = dict(options)
    if "weight" in options:
        torch_options["weight"] = torch.tensor(options["weight"], dtype=TORCH_DTYPES[dtype])
    twin = torch.nn.LinearCrossEntropyLoss(IN, C, out_features=out_features,
                                           dtype=TORCH_DTYPES[dtype], reduction=reduction,
                                           **torch_options)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    return ours, twin


def _data(rng, dtype, out_features, kind, batch):
    shape = () if batch is None else (batch,)
    x = rng.standard_normal(shape + (IN,)).astype(dtype)
    if kind == "probabilities":
        return x, rng.random(shape + (C,) + out_features).astype(dtype)
    t = rng.integers(0, C, shape + out_features)
    if batch is not None:
        t.reshape(-1)[::4] = -100 if batch == 3 else 2   # PyTorch's default / the option
    return x, t


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_torch(backend, dtype, case, reduction):
    options, out_features, kind, batch = CASES[case]
    rng = np.random.default_rng(len(case))
    ours, twin = _pair(dtype, out_features, reduction, options)
    ours.chunk_elements = 2 * C * int(np.prod(out_features))   # two rows per chunk
    x, t = _data(rng, dtype, out_features, kind, batch)
    for training, scale in [(True, None), (False, -1.5), (True, 0.75)]:
        ours.train(training)
        tx = torch.from_numpy(x).requires_grad_(True)
        loss, ref = ours(x, t), twin(tx, torch.from_numpy(t))
        if reduction == "none":
            assert isinstance(loss, np.ndarray) and loss.shape == tuple(ref.shape)
            grad = None if scale is None else rng.standard_normal(loss.shape).astype(dtype)
            upstream = torch.ones(()) if grad is None else torch.from_numpy(grad)
        else:
            assert isinstance(loss, np.float64)
            grad, upstream = scale, torch.tensor(1.0 if scale is None else scale)
        assert_close(loss, ref.detach().numpy(), dtype)
        (ref * upstream.to(ref.dtype)).sum().backward()
        grad_x = ours.backward(grad)
        assert grad_x.shape == x.shape and grad_x.dtype == dtype
        assert_close(grad_x, tx.grad.numpy(), dtype)
        for (name, p), (_, q) in zip(ours.named_parameters(), twin.named_parameters()):
            assert_close(p.grad, q.grad.numpy(), dtype, err_msg=name)   # accumulated


def test_chunks_hold_at_most_chunk_elements_logits(monkeypatch):
    rng = np.random.default_rng(3)
    ours, twin = _pair(np.float64, (2,), "mean", dict(bias=True, weight=WEIGHT))
    x, t = rng.standard_normal((11, IN)), rng.integers(0, C, (11, 2))
    whole = ours(x, t), ours.backward().copy()
    ours.zero_grad()
    kernels = ours._kernels()
    shapes = []

    class Spy:
        def __getattr__(self, name):
            return getattr(kernels, name)

        def linear_forward(self, *args, **kwargs):
            y = kernels.linear_forward(*args, **kwargs)
            shapes.append(y.shape)
            return y

    monkeypatch.setattr(ours, "_kernels", lambda: Spy())
    ours.chunk_elements = 35   # 3 rows of 10 logits
    assert_close(ours(x, t), whole[0], np.float64)
    assert shapes == [(3, 10), (3, 10), (3, 10), (2, 10)]
    assert_close(ours.backward(), whole[1], np.float64)
    tx = torch.from_numpy(x).requires_grad_(True)
    twin(tx, torch.from_numpy(t)).backward()
    assert_close(ours.linear.weight.grad, twin.linear.weight.grad.numpy(), np.float64)


def test_nothing_counted_and_empty_batch(dtype):
    ours, twin = _pair(dtype, (), "mean", dict(bias=True, ignore_index=1))
    x = np.random.default_rng(4).standard_normal((3, IN)).astype(dtype)
    t = np.array([1, 1, 1])
    tx = torch.from_numpy(x).requires_grad_(True)
    ref = twin(tx, torch.from_numpy(t))
    ref.backward()
    assert np.isnan(ours(x, t)) and np.isnan(ref.item())   # PyTorch's NaN, zero gradient
    assert_close(ours.backward(), tx.grad.numpy(), dtype)
    assert not ours.linear.weight.grad.any()
    for reduction, expected in [("mean", np.nan), ("sum", 0.0)]:
        empty = LinearCrossEntropyLoss(IN, C, dtype=dtype, reduction=reduction)
        np.testing.assert_equal(empty(np.zeros((0, IN), dtype), np.zeros(0, np.int64)),
                                expected)
        assert empty.backward().shape == (0, IN)
    empty = LinearCrossEntropyLoss(IN, C, out_features=(2,), dtype=dtype, reduction="none")
    assert empty(np.zeros((0, IN), dtype), np.zeros((0, 2), np.int64)).shape == (0, 2)


@pytest.mark.parametrize("training", [True, False])
def test_counted_weights_summing_to_zero_leave_ignored_rows_zero(dtype, training):
    """A 'mean' whose counted labels all have weight 0: PyTorch's NaN loss and NaN
    gradients of the counted rows, while rows whose labels are all ignored keep 0."""
    ours, twin = _pair(dtype, (2,), "mean", dict(weight=[1.0, 0.0, 0.0, 1.0, 1.0]))
    ours.train(training)
    x = np.random.default_rng(5).standard_normal((4, IN)).astype(dtype)
    t = np.array([[1, -100], [-100, -100], [2, 1], [-100, -100]])
    tx = torch.from_numpy(x).requires_grad_(True)
    twin(tx, torch.from_numpy(t)).backward()
    assert np.isnan(ours(x, t))
    grad = ours.backward()
    np.testing.assert_array_equal(np.isnan(grad), np.isnan(tx.grad.numpy()))
    assert np.isnan(grad[[0, 2]]).all() and not grad[[1, 3]].any()


def test_repr_and_state_dict_as_torch():
    ours = LinearCrossEntropyLoss(5, 10, out_features=(4, 3), bias=True, weight=np.ones(10),
                                  ignore_index=3, label_smoothing=0.1)
    twin = torch.nn.LinearCrossEntropyLoss(5, 10, out_features=(4, 3), bias=True,
                                           weight=torch.ones(10), ignore_index=3,
                                           label_smoothing=0.1)
    assert repr(ours) == repr(twin)
    assert list(ours.state_dict()) == list(twin.state_dict()) == [
        "weight", "linear.weight", "linear.bias"]
    assert ours.linear.weight.shape == (120, 5) and ours.linear.bias.shape == (120,)
    plain = LinearCrossEntropyLoss(5, 10)
    assert repr(plain) == repr(torch.nn.LinearCrossEntropyLoss(5, 10))
    assert list(plain.state_dict()) == ["linear.weight"]
    assert [p.shape for p in plain.parameters()] == [(10, 5)]
    assert LinearCrossEntropyLoss(5, 10, dtype=np.float64).linear.weight.dtype == np.float64


def test_errors():
    with pytest.raises(RuntimeError, match=r"expected weight shape to be \(10,\), got \(9,\)"):
        LinearCrossEntropyLoss(5, 10, weight=np.ones(9))
    with pytest.raises(RuntimeError, match=r"label_smoothing to be in range \[0, 1\]"):
        LinearCrossEntropyLoss(5, 10, label_smoothing=1.5)
    with pytest.raises(ValueError, match="reduction"):
        LinearCrossEntropyLoss(5, 10, reduction="avg")
    with pytest.raises(ValueError, match="options=.*PyTorch's own chunked"):
        LinearCrossEntropyLoss(5, 10, options=torch.nn.LinearCrossEntropyOptions())
    loss = LinearCrossEntropyLoss(IN, C, out_features=(3,))
    with pytest.raises(RuntimeError, match="before forward"):
        loss.backward()
    x = np.zeros((4, IN), np.float32)
    t = np.zeros((4, 3), np.int64)
    loss(x, t)
    expected = loss.backward().copy()
    bad = [
        (RuntimeError, "dimensionality 1 or 2, got 3", x[:, None], t),
        (RuntimeError, "last dimensions .* got 3 and 4", x[:, :3], t),
        (RuntimeError, "requires batched input", x[0], t[0]),
        (ValueError, r"labels out of range", x, t + C),
        (ValueError, r"LinearCrossEntropyLoss\(in_features=4, num_classes=5\): expected "
                     r"target to be integer class labels of shape \(4, 3\)", x, t[:, 0]),
        (TypeError, "integer class labels", x, t.astype(np.float32)),
        (RuntimeError, "Expected floating point type", x, np.zeros((4, C, 3), np.int64)),
        (TypeError, "does not match the layer's parameters", x.astype(np.float64), t),
    ]
    for kind, message, inp, target in bad:
        with pytest.raises(kind, match=message):
            loss(inp, target)
    np.testing.assert_array_equal(loss.backward(), expected)   # the last good forward's
    with pytest.raises(ValueError, match="a number"):
        loss.backward(np.ones(4))
    ignoring = LinearCrossEntropyLoss(IN, C, ignore_index=0)
    with pytest.raises(RuntimeError, match="ignore_index cannot be specified"):
        ignoring(x, np.full((4, C), 0.2, np.float32))
    none = LinearCrossEntropyLoss(IN, C, reduction="none")
    none(x, np.zeros(4, np.int64))
    with pytest.raises(ValueError, match=r"grad of shape \(4,\)"):
        none.backward(np.ones(3, np.float32))
