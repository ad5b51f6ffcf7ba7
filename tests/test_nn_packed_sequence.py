"""fastnn.nn.utils.rnn (PackedSequence and the pack/pad helpers) and RNN, LSTM and GRU on
packed input, against torch.nn.utils.rnn and torch.nn: packed data, batch sizes and
indices, padded arrays and lengths, error types, and the layers' outputs, final states
and the gradients of the input, the initial state and every parameter, for equal,
unequal and unsorted lengths, one or more layers, both directions, batch_first both ways."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.nn.utils import rnn as trnn

import fastnn
from fastnn import nn
from fastnn.nn.utils import rnn

from conftest import assert_close
from nn_torch_helpers import TORCH_DTYPES

torch.set_num_threads(2)
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")

LENGTHS = {"equal": ([3, 3, 3], True), "sorted": ([5, 3, 3, 1], True),
           "unsorted": ([2, 5, 1, 5, 3], False), "one": ([4], True)}


def same(ours, theirs):
    """Equal values and dtype (ours a NumPy array, theirs a tensor or None)."""
    if theirs is None:
        assert ours is None
        return
    theirs = theirs.detach().numpy()
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)


def same_packed(ours, theirs):
    assert isinstance(ours, rnn.PackedSequence)
    for a, b in zip(ours, theirs):
        same(a, b)


# ------------------------------------------------------------------ utilities
@pytest.mark.parametrize("trail", [(), (2, 3)], ids=["scalar-steps", "2x3-steps"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("case", list(LENGTHS))
def test_pack_and_pad_helpers_match_torch(rng, case, dtype, trail):
    lengths, is_sorted = LENGTHS[case]
    seqs = [(10 * rng.standard_normal((n,) + trail)).astype(dtype) for n in lengths]
    tseqs = [torch.from_numpy(s) for s in seqs]
    for batch_first in (False, True):
        for side in ("right", "left"):
            same(rnn.pad_sequence(seqs, batch_first, -1.5, side),
                 trnn.pad_sequence(tseqs, batch_first, -1.5, side))
        padded = rnn.pad_sequence(seqs, batch_first=batch_first)
        for enforce_sorted in ((True, False) if is_sorted else (False,)):
            ours = rnn.pack_padded_sequence(padded, lengths, batch_first, enforce_sorted)
            theirs = trnn.pack_padded_sequence(torch.from_numpy(padded), torch.tensor(lengths),
                                               batch_first, enforce_sorted)
            same_packed(ours, theirs)
            assert ours.batch_sizes.dtype == np.int64
            same_packed(rnn.pack_sequence(seqs, enforce_sorted),
                        trnn.pack_sequence(tseqs, enforce_sorted))
            for total_length in (None, max(lengths) + 2):
                a, la = rnn.pad_packed_sequence(ours, batch_first, 7.0, total_length)
                b, lb = trnn.pad_packed_sequence(theirs, batch_first, 7.0, total_length)
                same(a, b)
                same(la, lb)
            for a, b in zip(rnn.unpack_sequence(ours), trnn.unpack_sequence(theirs),
                            strict=True):
                same(a, b)
        unpadded = rnn.unpad_sequence(padded, np.array(lengths), batch_first)
        expected = trnn.unpad_sequence(torch.from_numpy(padded.copy()), torch.tensor(lengths),
                                       batch_first)
        for a, b in zip(unpadded, expected, strict=True):
            same(a, b)


def test_packed_sequence_is_torchs_named_tuple(rng):
    seqs = [rng.standard_normal((n, 2)).astype(np.float32) for n in (1, 3, 2)]
    packed = rnn.pack_sequence(seqs, enforce_sorted=False)
    data, batch_sizes, sorted_indices, unsorted_indices = packed
    assert packed._fields == ("data", "batch_sizes", "sorted_indices", "unsorted_indices")
    np.testing.assert_array_equal(sorted_indices, [1, 2, 0])
    np.testing.assert_array_equal(unsorted_indices, rnn.invert_permutation(sorted_indices))
    same(rnn.invert_permutation(np.array([2, 0, 3, 1])),
         trnn.invert_permutation(torch.tensor([2, 0, 3, 1])))
    assert rnn.invert_permutation(None) is None
    rebuilt = rnn.PackedSequence(data, batch_sizes, sorted_indices)   # unsorted computed
    np.testing.assert_array_equal(rebuilt.unsorted_indices, unsorted_indices)
    pair = rnn.PackedSequence((data, batch_sizes))
    assert pair.data is data and pair.sorted_indices is None
    assert packed.to(np.float32) is packed and packed.to("cpu") is packed
    double = packed.double()
    assert double.data.dtype == np.float64 and double.batch_sizes is batch_sizes
    assert packed.to(dtype=np.float64).data.dtype == np.float64 and not packed.is_cuda
    assert repr(packed).startswith("PackedSequence(data=array(")
    # later sequences broadcast into the first's trailing shape, as torch's copy
    same(rnn.pad_sequence([X[0], X[0, :2, :1]]),
         trnn.pad_sequence([torch.from_numpy(X[0]), torch.from_numpy(X[0, :2, :1])]))
    # an array is the list of its rows, as torch's tensor
    same(rnn.pad_sequence(np.ones((3, 2))), trnn.pad_sequence(torch.ones(3, 2,
                                                                          dtype=torch.float64)))


def test_fastnn_nn_utils_rnn_import_paths():
    code = ("import fastnn.nn.utils.rnn as a\n"
            "from fastnn.nn.utils.rnn import pad_sequence\n"
            "from fastnn.nn.utils import rnn\n"
            "import fastnn\n"
            "assert a is rnn is fastnn.nn.utils.rnn is fastnn.nn.rnn_utils\n"
            "assert pad_sequence is fastnn.nn.utils.rnn.pad_sequence\n"
            "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


X = np.arange(24, dtype=np.float32).reshape(4, 3, 2)
BAD = {  # name: (call(module, array converter), torch's message or None)
    "unsorted-lengths": (lambda m, t: m.pack_padded_sequence(t(X), [2, 3, 1]),
                         "must be sorted in decreasing order when `enforce_sorted` is True"),
    "zero-length": (lambda m, t: m.pack_padded_sequence(t(X), [3, 2, 0]),
                    "Length of all samples has to be greater than 0"),
    "zero-length-unsorted": (lambda m, t: m.pack_padded_sequence(t(X), [0, 2, 3],
                                                                enforce_sorted=False),
                             "Length of all samples has to be greater than 0"),
    "negative-length": (lambda m, t: m.pack_padded_sequence(t(X), [3, 2, -1]),
                        "Length of all samples has to be greater than 0"),
    "lengths-count": (lambda m, t: m.pack_padded_sequence(t(X), [4, 2]),
                      r"Expected `len\(lengths\)` to be equal to batch_size, but got 2 "
                      r"\(batch_size=3\)"),
    "lengths-2d": (lambda m, t: m.pack_padded_sequence(t(X), [[4, 3, 2]]),
                   "'lengths' argument should be a 1D"),
    "lengths-str": (lambda m, t: m.pack_padded_sequence(t(X), "abc"), None),
    "input-1d": (lambda m, t: m.pack_padded_sequence(t(X[:, 0, 0]), [4]), None),
    "empty-batch": (lambda m, t: m.pack_padded_sequence(t(X[:, :0]), []),
                    "Cannot pack empty tensors."),
    "no-features": (lambda m, t: m.pack_padded_sequence(t(X[..., :0]), [4, 3, 2]),
                    "Cannot pack empty tensors."),
    "pad-empty-list": (lambda m, t: m.pad_sequence([], padding_side="up"),
                       "received an empty list of sequences"),
    "pad-side": (lambda m, t: m.pad_sequence([t(X[0])], padding_side="middle"),
                 "Expected padding_side to be one of left or right, but got middle."),
    "pad-not-iterable": (lambda m, t: m.pad_sequence(3),
                         "Expected iterable for input sequences, but got arg of type"),
    "pad-trailing-shape": (lambda m, t: m.pad_sequence([t(X[0, :, :1]), t(X[0])]), None),
    "pad-0d": (lambda m, t: m.pad_sequence([t(X[0, 0, 0]), t(X[0, 0, 1])]), None),
    "total-length": (lambda m, t: m.pad_packed_sequence(
        m.pack_padded_sequence(t(X), [4, 2, 1]), total_length=3),
        "Expected total_length to be at least the length of the longest sequence in input, "
        "but got total_length=3 and max sequence length being 4"),
    "pack-sequence-unsorted": (lambda m, t: m.pack_sequence([t(X[:1, 0]), t(X[:2, 0])]),
                               "must be sorted in decreasing order"),
    "pack-sequence-empty": (lambda m, t: m.pack_sequence([]),
                            "received an empty list of sequences"),
    "unpad-count": (lambda m, t: m.unpad_sequence(t(X[0]), t(np.array([3, 2, 1]))), None),
    "packed-from-one-array": (lambda m, t: m.PackedSequence(t(X)),
                              "Expected data to be a list or tuple of length 2"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_raises_torchs_error_type(name):
    call, message = BAD[name]
    with pytest.raises(Exception) as theirs:
        call(trnn, torch.from_numpy)
    with pytest.raises(type(theirs.value), match=message) as ours:
        call(rnn, lambda a: a)
    # torch's type, and fastnn's ValueError (or TypeError) as well (fastnn.errors'
    # two-type classes, e.g. RuntimeValueError for torch's RuntimeError)
    assert isinstance(ours.value, (ValueError, TypeError))


def test_errors_where_torch_reads_past_or_truncates():
    """torch packs a length past the padded input's end from memory beyond it and
    truncates fractional lengths; fastnn refuses both. A non-PackedSequence is a
    TypeError (torch: AttributeError on .batch_sizes)."""
    with pytest.raises(RuntimeError, match="longer than the padded input"):
        rnn.pack_padded_sequence(X, [5, 2, 1])
    with pytest.raises(ValueError, match="integer lengths"):
        rnn.pack_padded_sequence(X, [4.0, 3.0, 2.5])
    packed = rnn.pack_padded_sequence(X, np.array([4.0, 3.0, 2.0]))   # whole floats: fine
    np.testing.assert_array_equal(packed.batch_sizes, [3, 3, 2, 1])
    with pytest.raises(TypeError, match="PackedSequence"):
        rnn.pad_packed_sequence(X)
    with pytest.raises(ValueError, match=r"lengths in \[0, 3\]"):
        rnn.unpad_sequence(X[:3], [4, 1, 1])


# ------------------------------------------------------------------ recurrent layers
def twins(name, dtype, **kwargs):
    ours = getattr(nn, name)(3, 5, dtype=dtype, **kwargs)
    theirs = getattr(torch.nn, name)(3, 5, **kwargs).to(TORCH_DTYPES[np.dtype(dtype)])
    ours.load_state_dict({k: v.detach().numpy().copy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def run_packed(ours, theirs, lengths, enforce_sorted, rng, dtype, with_hx, grad_form="packed"):
    """Pack the same padded batch for both, forward with or without an initial state,
    backward with random gradients of the packed output and of the final states;
    compare outputs, states, the padded input's gradient, grad_hx and every parameter's
    gradient."""
    lstm = ours.mode == "LSTM"
    t_len, n = max(lengths), len(lengths)
    x = rng.standard_normal((n, t_len, 3) if ours.batch_first else (t_len, n, 3)).astype(dtype)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    tpacked = trnn.pack_padded_sequence(tx, lengths, ours.batch_first, enforce_sorted)
    packed = rnn.pack_padded_sequence(x, lengths, ours.batch_first, enforce_sorted)
    states = ours.num_layers * (2 if ours.bidirectional else 1)
    hx = [rng.standard_normal((states, n, size)).astype(dtype)
          for size in (ours.proj_size or 5, 5)]
    thx = [torch.from_numpy(h.copy()).requires_grad_(True) for h in hx]
    if lstm:
        args = (tuple(hx), tuple(thx)) if with_hx else (None, None)
    else:
        args = (hx[0], thx[0]) if with_hx else (None, None)
    tout, tfinal = theirs(tpacked, args[1])
    out, final = ours(packed, args[0])
    tfinal, final = (tfinal, final) if lstm else ((tfinal,), (final,))
    grad_out = rng.standard_normal(tuple(tout.data.shape)).astype(dtype)
    grad_final = [rng.standard_normal(tuple(t.shape)).astype(dtype) for t in tfinal]
    loss = (tout.data * torch.from_numpy(grad_out)).sum()
    for g, t in zip(grad_final, tfinal):
        loss = loss + (t * torch.from_numpy(g)).sum()
    loss.backward()
    given = {"packed": rnn.PackedSequence(grad_out, out.batch_sizes, out.sorted_indices,
                                          out.unsorted_indices),
             "data": grad_out}[grad_form]
    grad = ours.backward(given, tuple(grad_final) if lstm else grad_final[0])

    assert isinstance(out, rnn.PackedSequence) and out.data.dtype == dtype
    for a, b in zip(out[1:], tout[1:]):
        same(a, b)
    assert_close(out.data, tout.data.detach().numpy(), dtype)
    for a, b in zip(final, tfinal, strict=True):
        assert a.shape == tuple(b.shape)
        assert_close(a, b.detach().numpy(), dtype)
    assert isinstance(grad, rnn.PackedSequence) and grad.data.shape == packed.data.shape
    grad_x = rnn.pad_packed_sequence(grad, ours.batch_first, total_length=t_len)[0]
    assert_close(grad_x, tx.grad.numpy(), dtype, scale=10)
    named = dict(theirs.named_parameters())
    assert [name for name, _ in ours.named_parameters()] == list(named)
    for name, p in ours.named_parameters():
        assert_close(p.grad, named[name].grad.numpy(), dtype, scale=30, err_msg=name)
    if with_hx:
        for g, t in zip(ours.grad_hx if lstm else (ours.grad_hx,), thx):
            assert_close(g, t.grad.numpy(), dtype, scale=10)


CONFIGS = {"1-layer": dict(), "2-layer-bf": dict(num_layers=2, batch_first=True),
           "bi": dict(bidirectional=True),
           "3-layer-bi-bf-nobias": dict(num_layers=3, bidirectional=True, batch_first=True,
                                        bias=False)}


@pytest.mark.parametrize("case", ["equal", "sorted", "unsorted"])
@pytest.mark.parametrize("config", list(CONFIGS))
@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
def test_packed_recurrent_layers_match_torch(dtype, rng, name, config, case):
    ours, theirs = twins(name, dtype, **CONFIGS[config])
    lengths, enforce_sorted = LENGTHS[case]
    run_packed(ours, theirs, lengths, enforce_sorted, rng, dtype, with_hx=True)
    ours.zero_grad()
    theirs.zero_grad()
    run_packed(ours, theirs, lengths, enforce_sorted, rng, dtype, with_hx=False,
               grad_form="data")


@pytest.mark.parametrize("case", ["sorted", "unsorted", "one"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_packed_lstm_with_projections_matches_torch(dtype, rng, case, batch_first):
    ours, theirs = twins("LSTM", dtype, proj_size=2, num_layers=2, bidirectional=True,
                         batch_first=batch_first)
    lengths, enforce_sorted = LENGTHS[case]
    run_packed(ours, theirs, lengths, enforce_sorted, rng, dtype, with_hx=True)


def test_packed_relu_rnn_matches_torch(rng):
    ours, theirs = twins("RNN", np.float64, nonlinearity="relu", num_layers=2,
                         bidirectional=True)
    run_packed(ours, theirs, [2, 4, 1, 3], False, rng, np.float64, with_hx=True)


@pytest.mark.parametrize("name", ["LSTM", "GRU"])
def test_equal_lengths_packed_equals_padded_and_grad_defaults(rng, name):
    """With equal lengths the packed forward is the padded one (the padded path is
    untouched); backward(None, grad_h_n) matches a zero output gradient."""
    ours = getattr(nn, name)(3, 4, num_layers=2, bidirectional=True, dtype=np.float64)
    x = rng.standard_normal((5, 3, 3))
    out, final = ours(x)
    pout, pfinal = ours(rnn.pack_padded_sequence(x, [5, 5, 5]))
    assert_close(rnn.pad_packed_sequence(pout)[0], out, np.float64)
    for a, b in zip(pfinal if name == "LSTM" else (pfinal,),
                    final if name == "LSTM" else (final,)):
        assert_close(a, b, np.float64)
    h_grad = rng.standard_normal((4, 3, 4))
    ours.zero_grad()
    ours(rnn.pack_padded_sequence(x, [5, 5, 5]))
    grad_hn = (h_grad, None) if name == "LSTM" else h_grad
    first = ours.backward(None, grad_hn).data
    grads = [p.grad.copy() for p in ours.parameters()]
    ours.zero_grad()
    ours(rnn.pack_padded_sequence(x, [5, 5, 5]))
    second = ours.backward(np.zeros((15, 8)), grad_hn).data
    np.testing.assert_array_equal(first, second)
    for g, p in zip(grads, ours.parameters()):
        np.testing.assert_array_equal(g, p.grad)
    assert np.abs(first).sum() > 0


def test_packed_dropout_between_layers(rng):
    """Training-mode dropout acts on the packed outputs (same seed, same result); eval
    mode matches torch."""
    ours, theirs = twins("GRU", np.float64, num_layers=3, dropout=0.5)
    x = rng.standard_normal((4, 3, 3))
    packed = rnn.pack_padded_sequence(x, [1, 4, 2], enforce_sorted=False)
    fastnn.manual_seed(5)
    a, _ = ours(packed)
    grad = ours.backward(np.ones_like(a.data))
    fastnn.manual_seed(5)
    b, _ = ours(packed)
    np.testing.assert_array_equal(a.data, b.data)
    assert np.isfinite(grad.data).all() and grad.data.shape == packed.data.shape
    ours.eval()
    theirs.eval()
    ours.zero_grad()
    run_packed(ours, theirs, [1, 4, 2], False, rng, np.float64, with_hx=True)


def test_packed_input_errors():
    lstm = nn.LSTM(3, 5, num_layers=2)
    packed = rnn.pack_sequence([np.ones((4, 3), np.float32), np.ones((2, 3), np.float32)])
    with pytest.raises(ValueError, match=r"data has shape \(sum of lengths, input_size = 3\)"):
        lstm(rnn.PackedSequence(np.ones((6, 4), np.float32), packed.batch_sizes))
    with pytest.raises(ValueError, match="non-increasing batch_sizes summing to len"):
        lstm(rnn.PackedSequence(np.ones((6, 3), np.float32), np.array([1, 2, 3])))
    with pytest.raises(ValueError, match=r"expected h_0 of shape \(2, 2, 5\)"):
        lstm(packed, (np.zeros((2, 3, 5), np.float32), np.zeros((2, 3, 5), np.float32)))
    with pytest.raises(TypeError, match="does not match the layer's parameters"):
        lstm(packed.double())
    out, _ = lstm(packed)
    with pytest.raises(ValueError, match="packed as the output"):
        lstm.backward(rnn.PackedSequence(out.data, out.batch_sizes, np.array([1, 0])))
    with pytest.raises(ValueError, match=r"expected grad_output of shape \(6, 5\)"):
        lstm.backward(np.ones((6, 4), np.float32))
    before = [p.grad.copy() for p in lstm.parameters()]
    with pytest.raises(ValueError, match=r"grad_h_n of shape \(2, 2, 5\)"):
        lstm.backward(None, (np.ones((2, 3, 5), np.float32), None))
    for g, p in zip(before, lstm.parameters()):   # a failed backward changes nothing
        np.testing.assert_array_equal(g, p.grad)
