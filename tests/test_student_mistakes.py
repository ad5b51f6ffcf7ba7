"""Mistakes people learning deep learning make in a training loop, each against PyTorch
2.13: where PyTorch refuses the mistake fastnn refuses it too, with an error of PyTorch's
type whose message names the argument, what was expected and what was given (and how to
fix the usual cause); where PyTorch computes, fastnn computes the same numbers."""
import numpy as np
import pytest

from fastnn import nn
from fastnn.errors import DtypeError
from fastnn.nn import functional as F

import torch  # noqa: E402  (after fastnn)

F32 = np.float32
LOGITS = np.random.default_rng(0).standard_normal((6, 3)).astype(F32)
LABELS = np.array([0, 2, 1, 1, 0, 2])


def _torch_error(fn):
    with pytest.raises(Exception) as info:
        fn()
    return info.value


@pytest.mark.parametrize("dtype", [np.int64, np.int32, np.uint8])
def test_cross_entropy_integer_one_hot_targets_are_refused_by_dtype(backend, dtype):
    """np.eye(C, dtype=int)[y]: PyTorch reads a target of the logits' shape as class
    probabilities and refuses an integer one ("Expected floating point type for target
    with class probabilities"); fastnn said only that labels should be (N,)."""
    one_hot = np.eye(3, dtype=dtype)[LABELS]
    torch_error = _torch_error(lambda: torch.nn.CrossEntropyLoss()(
        torch.from_numpy(LOGITS), torch.from_numpy(one_hot)))
    assert isinstance(torch_error, RuntimeError)
    assert "Expected floating point type" in str(torch_error)
    loss = nn.CrossEntropyLoss()
    with pytest.raises(DtypeError) as info:
        loss(LOGITS, one_hot)
    assert isinstance(info.value, RuntimeError)   # PyTorch's type too
    message = str(info.value)
    for words in ("CrossEntropyLoss()", "labels of shape (6,)", "float probabilities",
                  f"dtype {np.dtype(dtype)}", "y.astype(np.float32)", "y.argmax(1)"):
        assert words in message, (words, message)
    with pytest.raises(DtypeError, match=r"Expected floating point type for target with "
                                         r"class probabilities, got "):
        F.cross_entropy(LOGITS, one_hot)
    # the float one-hot rows they meant: PyTorch's probabilities, its loss and gradient
    probabilities = one_hot.astype(F32)
    x = torch.from_numpy(LOGITS).requires_grad_()
    expected = torch.nn.CrossEntropyLoss()(x, torch.from_numpy(probabilities))
    expected.backward()
    np.testing.assert_allclose(loss(LOGITS, probabilities), expected.item(), rtol=1e-6)
    np.testing.assert_allclose(loss.backward(), x.grad.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(F.cross_entropy(LOGITS, probabilities), expected.item(),
                               rtol=1e-6)


def test_cross_entropy_integer_one_hot_other_ranks(backend):
    """One sample (C,) and score maps (N, C, L) with integer targets of their shape: the
    class axis named in the fix (0, 1), as PyTorch refuses both."""
    with pytest.raises(DtypeError, match=r"y\.argmax\(0\)"):
        nn.CrossEntropyLoss()(LOGITS[0], np.array([0, 1, 0]))
    maps = np.zeros((2, 3, 4), F32)
    with pytest.raises(DtypeError, match=r"labels of shape \(2, 4\) or float probabilities"
                                         r".*y\.argmax\(1\)"):
        nn.CrossEntropyLoss()(maps, np.zeros((2, 3, 4), np.int64))
    with pytest.raises(RuntimeError, match="Expected floating point type"):
        torch.nn.functional.cross_entropy(torch.zeros(2, 3, 4),
                                          torch.zeros(2, 3, 4, dtype=torch.long))
    with pytest.raises(DtypeError, match="Expected floating point type"):
        F.cross_entropy(maps, np.zeros((2, 3, 4), np.int64))


@pytest.mark.parametrize("name", ["CrossEntropyLoss", "NLLLoss", "cross_entropy",
                                  "nll_loss"])
def test_column_of_labels_says_how_to_flatten_it(backend, name):
    """Labels (N, 1) (a column read from a CSV file, y[:, None]): PyTorch's RuntimeError
    "0D or 1D target tensor expected"; fastnn's message now says y.squeeze(-1) fixes it."""
    column = LABELS[:, None]
    fn = getattr(nn, name)() if name[0].isupper() else getattr(F, name)
    torch_fn = getattr(torch.nn, name)() if name[0].isupper() else getattr(
        torch.nn.functional, name)
    assert isinstance(_torch_error(lambda: torch_fn(torch.from_numpy(LOGITS),
                                                    torch.from_numpy(column))), RuntimeError)
    with pytest.raises(RuntimeError, match=r"\(6, 1\)|\[6, 1\]") as info:
        fn(LOGITS, column)
    assert isinstance(info.value, ValueError)
    assert "y.squeeze(-1)" in str(info.value)
    # the labels it gives are the ones PyTorch takes: the same loss
    expected = torch_fn(torch.from_numpy(LOGITS), torch.from_numpy(column.squeeze(-1)))
    np.testing.assert_allclose(fn(LOGITS, column.squeeze(-1)), expected.item(), rtol=1e-6)
    # a score map's column of labels (N, L, 1) too
    maps = np.zeros((2, 3, 4), F32)
    with pytest.raises(ValueError, match=r"y\.squeeze\(-1\)"):
        fn(maps, np.zeros((2, 4, 1), np.int64))


def test_labels_and_logits_swapped_names_the_logits_dtype(backend):
    """loss_fn(y, out): PyTorch refuses the integer input ("not implemented for 'Long'");
    fastnn read the labels (N,) as one sample's logits and complained about the
    probabilities' shape."""
    assert isinstance(_torch_error(lambda: torch.nn.CrossEntropyLoss()(
        torch.from_numpy(LABELS), torch.from_numpy(LOGITS))), RuntimeError)
    for loss in (nn.CrossEntropyLoss(), nn.NLLLoss()):
        with pytest.raises(DtypeError, match=r"expected (logits|pred) of dtype "
                                             r"float32 or float64, got int64"):
            loss(LABELS, LOGITS)
    # a 1-D float sample still takes its label, as PyTorch's
    expected = torch.nn.CrossEntropyLoss()(torch.from_numpy(LOGITS[0]), torch.tensor(2))
    np.testing.assert_allclose(nn.CrossEntropyLoss()(LOGITS[0], np.int64(2)),
                               expected.item(), rtol=1e-6)


@pytest.mark.parametrize("make_loss", [nn.MSELoss, nn.CrossEntropyLoss, nn.BCEWithLogitsLoss])
def test_a_float64_target_for_a_float32_output_says_how_to_convert_it(backend, make_loss):
    """np.eye(C)[y] and pandas columns are float64: PyTorch promotes, fastnn refuses
    (README: one dtype a call) and says how to convert the target."""
    target = np.eye(3)[LABELS]
    with pytest.raises(DtypeError, match=r"target is float64 but expected float32 .*"
                                         r"target\.astype\(np\.float32\) converts it"):
        make_loss()(LOGITS, target)
    got = make_loss()(LOGITS, target.astype(np.float32))
    want = getattr(torch.nn, make_loss.__name__)()(torch.from_numpy(LOGITS),
                                                  torch.from_numpy(target.astype(F32)))
    assert float(got) == pytest.approx(want.item(), rel=1e-6)


@pytest.mark.parametrize("dtype", [np.int64, np.bool_, np.float16])
def test_integer_bool_or_half_features_say_how_to_convert_them(backend, dtype):
    """Table columns read as integers or bools, and float16 arrays: PyTorch refuses them in
    a float32 Linear too; fastnn's error says how to convert them, and the converted
    features give PyTorch's output."""
    x = (np.arange(12).reshape(4, 3) % 2).astype(dtype)
    layer = nn.Linear(3, 2)
    with pytest.raises(DtypeError, match=rf"got {np.dtype(dtype).name} "
                                         r"\(input\.astype\(np\.float32\) converts it\)"):
        layer(x)
    twin = torch.nn.Linear(3, 2)
    with torch.no_grad():
        twin.weight.copy_(torch.from_numpy(layer.weight.data))
        twin.bias.copy_(torch.from_numpy(layer.bias.data))
        want = twin(torch.from_numpy(x.astype(F32))).numpy()
    np.testing.assert_allclose(layer(x.astype(np.float32)), want, rtol=1e-6, atol=1e-7)
