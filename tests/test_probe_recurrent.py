"""Probes of the recurrent area (fastnn.nn.utils.rnn, RNN/LSTM/GRU and their cells,
CTCLoss, Embedding, EmbeddingBag) against PyTorch: cases earlier audits missed."""
import numpy as np
import pytest
import torch
from torch.nn.utils import rnn as trnn

from fastnn import nn
from fastnn.nn import functional as F
from fastnn.nn.utils import rnn


def _pad_both(padding_value, dtype, packed):
    """(PyTorch's padded array or the exception type it raised, ours likewise)."""
    seqs = [np.arange(3).astype(dtype), np.arange(1).astype(dtype)]
    out = []
    for lib in (trnn, rnn):
        arrays = [torch.tensor(s) for s in seqs] if lib is trnn else seqs
        try:
            if packed:
                got = lib.pad_packed_sequence(lib.pack_sequence(arrays),
                                              padding_value=padding_value)[0]
            else:
                got = lib.pad_sequence(arrays, padding_value=padding_value)
            out.append(np.asarray(got))
        except (RuntimeError, TypeError) as err:
            out.append(type(err))
    return out


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("dtype, padding_value", [
    (np.int64, float("nan")), (np.int64, float("inf")), (np.int64, 1e30),
    (np.int32, 2.0 ** 40), (np.int8, 300), (np.uint8, -1.5), (np.uint8, 300),
    (np.float32, 1e300)])
def test_pad_value_that_overflows_the_dtype_is_an_error(packed, dtype, padding_value):
    """A padding value the padded dtype cannot hold is PyTorch's RuntimeError ("value
    cannot be converted ... without overflow"), not a silently wrapped fill (NaN into
    int64 gave -2**63)."""
    theirs, ours = _pad_both(padding_value, dtype, packed)
    assert theirs is RuntimeError
    with pytest.raises(RuntimeError, match="without overflow"):
        (rnn.pad_packed_sequence(rnn.pack_sequence([np.arange(3).astype(dtype)]),
                                 padding_value=padding_value) if packed else
         rnn.pad_sequence([np.arange(3).astype(dtype)], padding_value=padding_value))
    with pytest.raises(ValueError):   # (fastnn's convention for a bad value too)
        rnn.pad_sequence([np.arange(3).astype(dtype)], padding_value=padding_value)


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("dtype, padding_value", [
    (np.int64, -1.5), (np.int64, 2 ** 40), (np.int8, -1), (np.uint8, 3.5),
    (np.bool_, float("nan")), (np.float32, 1e30), (np.float32, float("nan")),
    (np.float64, float("-inf")), (np.float64, True)])
def test_pad_value_that_fits_fills_as_pytorch(packed, dtype, padding_value):
    theirs, ours = _pad_both(padding_value, dtype, packed)
    assert not isinstance(theirs, type)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("padding_value", [None, "0", 1 + 2j])
def test_pad_value_not_a_number_is_a_type_error(padding_value):
    with pytest.raises(TypeError, match="padding_value"):
        rnn.pad_sequence([np.arange(3.0)], padding_value=padding_value)
    with pytest.raises(TypeError, match="padding_value"):
        rnn.pad_packed_sequence(rnn.pack_sequence([np.arange(3.0)]),
                                padding_value=padding_value)


@pytest.mark.parametrize("flag, message", [("scale_grad_by_freq", "scaling the gradient"),
                                           ("sparse", "sparse weights")])
def test_functional_embedding_bag_max_refuses_what_pytorch_refuses(flag, message):
    """F.embedding_bag(mode='max') with scale_grad_by_freq or sparse is PyTorch's
    ValueError (nn.EmbeddingBag refuses the first already), before the weight is
    renormalised."""
    weight = np.arange(12, dtype=np.float32).reshape(4, 3)
    idx = np.array([[1, 2], [3, 0]])
    with pytest.raises(ValueError, match=message):
        torch.nn.functional.embedding_bag(torch.tensor(idx), torch.tensor(weight), mode="max",
                                          **{flag: True})
    before = weight.copy()
    with pytest.raises(ValueError, match=message):
        F.embedding_bag(idx, weight, mode="max", max_norm=1.0, **{flag: True})
    np.testing.assert_array_equal(weight, before)
    assert F.embedding_bag(idx, weight, mode="sum", **{flag: True}).shape == (2, 3)


@pytest.mark.parametrize("make", [
    lambda lib: lib.Embedding(4, 3, padding_idx=4),
    lambda lib: lib.Embedding(4, 3, padding_idx=-5),
    lambda lib: lib.EmbeddingBag(4, 3, padding_idx=4),
    lambda lib: lib.Embedding.from_pretrained(
        (torch.ones(3) if lib is torch.nn else np.ones(3, np.float32))),
    lambda lib: lib.EmbeddingBag.from_pretrained(
        (torch.ones(3) if lib is torch.nn else np.ones(3, np.float32)))])
def test_embedding_arguments_pytorch_asserts_against_are_assertion_errors(make):
    """PyTorch asserts the padding_idx range and from_pretrained's 2-D table
    (AssertionError); fastnn's error is that type too, and still a ValueError."""
    with pytest.raises(AssertionError):
        make(torch.nn)
    with pytest.raises(AssertionError) as caught:
        make(nn)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("kwargs, error", [
    (dict(offsets=np.array([1, 2])), ValueError),                      # offsets[0] != 0
    (dict(offsets=np.array([0, 3, 2])), ValueError),                   # decreasing
    (dict(offsets=np.array([0, 2]), padding_idx=7), ValueError),
    (dict(offsets=np.array([0, 2]), mode="sum",
          per_sample_weights=np.ones(3, np.float32)), ValueError),
    (dict(offsets=np.array([0, 2]), per_sample_weights=np.ones(4, np.float32)),
     NotImplementedError)])
def test_functional_embedding_bag_refused_call_leaves_weight_alone(kwargs, error):
    """A call F.embedding_bag refuses does not renormalise weight first (max_norm's
    in-place rescaling comes after the checks, as a failed call writes nothing)."""
    weight = np.full((4, 3), 5.0, np.float32)
    with pytest.raises(error):
        F.embedding_bag(np.arange(4), weight, max_norm=1.0, **kwargs)
    np.testing.assert_array_equal(weight, np.full((4, 3), 5.0, np.float32))


def test_functional_embedding_bag_max_norm_renormalises_weight_as_pytorch():
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((6, 3)).astype(np.float32) * 3
    theirs = torch.tensor(weight)
    idx, offsets = np.array([0, 2, 2, 5, 1]), np.array([0, 2])
    out = F.embedding_bag(idx, weight, offsets, max_norm=1.5, norm_type=1.0, mode="sum")
    expected = torch.nn.functional.embedding_bag(torch.tensor(idx), theirs,
                                                 torch.tensor(offsets), max_norm=1.5,
                                                 norm_type=1.0, mode="sum")
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-6)
    np.testing.assert_allclose(weight, theirs.numpy(), rtol=1e-6)
