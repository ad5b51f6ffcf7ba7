"""Regression tests from a seeded differential fuzz of the sequence layers (recurrent,
attention, transformer, embedding) against PyTorch, forward and backward."""
import numpy as np
import pytest

from fastnn import nn
from fastnn.nn import functional as F

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("max_norm", [None, 1.0])
@pytest.mark.parametrize("indices", [[[3]], [[-1]], [[-3]], [[-4]], [[-1, 3]], [[0, -2]],
                                     [[2, -4]]])
def test_embedding_bag_out_of_range_index_error_type(indices, max_norm):
    # with max_norm, PyTorch's renorm selects each row first: an index in [-3, 0) wraps
    # there and the bag kernel's check raises (RuntimeError); only one outside [-3, 3) is
    # the renorm's IndexError. fastnn gave IndexError for every index with max_norm (the
    # layer) or RuntimeError for every index (the functional form)
    def error_of(call):
        with pytest.raises(Exception) as info:
            call()
        return info.value

    want = type(error_of(lambda: torch.nn.EmbeddingBag(3, 2, max_norm=max_norm)(
        torch.tensor(indices))))
    w = np.random.default_rng(0).standard_normal((3, 2))
    for call in (lambda: nn.EmbeddingBag(3, 2, max_norm=max_norm)(np.array(indices)),
                 lambda: F.embedding_bag(np.array(indices), w, max_norm=max_norm)):
        got = error_of(call)
        assert isinstance(got, want) and isinstance(got, ValueError), (want, type(got))


def _error_of(call):
    with pytest.raises(Exception) as info:
        call()
    return info.value


def _same_error(torch_call, fastnn_call):
    want, got = type(_error_of(torch_call)), _error_of(fastnn_call)
    assert isinstance(got, want) and isinstance(got, ValueError), (want, type(got), got)


@pytest.mark.parametrize("mode", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("x_shape, h_shape", [
    ((3, 2, 5), (1, 2, 4)),      # features: RuntimeError
    ((3, 5), (1, 4)),            # the same, unbatched
    ((3, 2, 3, 3), (1, 2, 4)),   # input's rank: ValueError
    ((3, 2, 3), (1, 3, 4)),      # h_0's batch: RuntimeError
    ((3, 2, 3), (1, 4)),         # h_0's rank for batched input: RuntimeError
    ((3, 3), (1, 2, 4)),         # h_0's rank for unbatched input: RuntimeError
    ((0, 2, 3), (1, 2, 4)),      # no steps: RuntimeError
])
def test_recurrent_shape_error_types(mode, x_shape, h_shape):
    # bare ValueErrors where PyTorch raises RuntimeError (all but the input's rank)
    rng = np.random.default_rng(0)
    x, h = rng.standard_normal(x_shape), rng.standard_normal(h_shape)
    hx = (h, np.zeros(h_shape)) if mode == "LSTM" else h
    tm, fm = getattr(torch.nn, mode)(3, 4).double(), getattr(nn, mode)(3, 4, dtype=np.float64)
    th = tuple(torch.from_numpy(a) for a in hx) if mode == "LSTM" else torch.from_numpy(hx)
    _same_error(lambda: tm(torch.from_numpy(x), th), lambda: fm(x, hx))


def test_recurrent_packed_data_features_error_type():
    x = np.zeros((4, 5))
    tp = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x.reshape(2, 2, 5)), [2, 2])
    fp = nn.utils.rnn.pack_padded_sequence(x.reshape(2, 2, 5), np.array([2, 2]))
    _same_error(lambda: torch.nn.GRU(3, 4).double()(tp),
                lambda: nn.GRU(3, 4, dtype=np.float64)(fp))


_CELL_CASES = [
    ((2, 5), (2, 4), (2, 4)),        # features: RuntimeError
    ((2, 5), (2, 4, 1), (2, 4)),     # h's rank first: ValueError
    ((2, 3, 1), (2, 4), (2, 4)),     # input's rank: ValueError
    ((2, 3), (2,), (2, 4)),          # 1-D h of N entries: IndexError
    ((2, 3), (4,), (2, 4)),          # 1-D h of another length: RuntimeError
    ((2, 3), (2, 5), (2, 4)),        # hidden size: RuntimeError
    ((2, 3), (3, 4), (2, 4)),        # batch: RuntimeError
    ((3,), (2, 4), (2, 4)),          # 2-D h for unbatched input: RuntimeError
]
_LSTM_CELL_CASES = [
    ((2, 3), (2, 4), (2,)),          # c: IndexError
    ((2, 3), (2, 4), (2, 5)),        # c: RuntimeError
]


@pytest.mark.parametrize("mode, x_shape, h_shape, c_shape",
                         [(m,) + case for m in ("RNNCell", "LSTMCell", "GRUCell")
                          for case in _CELL_CASES]
                         + [("LSTMCell",) + case for case in _LSTM_CELL_CASES])
def test_cell_shape_error_types(mode, x_shape, h_shape, c_shape):
    # bare ValueErrors where PyTorch raises RuntimeError or IndexError (its ranks are
    # ValueErrors, hx's checked before the input's features)
    rng = np.random.default_rng(0)
    x, h, c = (rng.standard_normal(s) for s in (x_shape, h_shape, c_shape))
    hx = (h, c) if mode == "LSTMCell" else h
    tm, fm = getattr(torch.nn, mode)(3, 4).double(), getattr(nn, mode)(3, 4, dtype=np.float64)
    th = tuple(torch.from_numpy(a) for a in hx) if mode == "LSTMCell" else torch.from_numpy(hx)
    _same_error(lambda: tm(torch.from_numpy(x), th), lambda: fm(x, hx))


@pytest.mark.parametrize("key_shape, value_shape", [
    ((2, 3, 5), (2, 3, 5)),   # key and value alike, not embed_dim: the projection's RuntimeError
    ((2, 3, 5), (2, 3, 4)),   # not alike: PyTorch's assertion
    ((3, 5), (3, 5)),         # unbatched: rank (AssertionError) before features
])
def test_attention_key_features_error_type(key_shape, value_shape):
    # one in-projection weight: fastnn asserted (AssertionError) on key's features where
    # PyTorch, having asserted key and value alike, fails in the projection (RuntimeError);
    # a TransformerDecoderLayer's memory of the wrong width gave the same AssertionError
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(s) for s in ((2, 2, 4), key_shape, value_shape))
    tm = torch.nn.MultiheadAttention(4, 2, batch_first=True).double()
    fm = nn.MultiheadAttention(4, 2, batch_first=True, dtype=np.float64)
    _same_error(lambda: tm(*(torch.from_numpy(a) for a in (q, k, v))), lambda: fm(q, k, v))
    if key_shape == value_shape:
        td = torch.nn.TransformerDecoderLayer(4, 2, 8, 0.0, batch_first=True).double()
        fd = nn.TransformerDecoderLayer(4, 2, 8, 0.0, batch_first=True, dtype=np.float64)
        _same_error(lambda: td(torch.from_numpy(q), torch.from_numpy(k)), lambda: fd(q, k))


@pytest.mark.parametrize("src_shape, tgt_shape", [
    ((2, 3), (2, 2, 4)),      # src's features first: RuntimeError, not the ranks' assertion
    ((2, 3, 4), (3, 4)),      # src batched: tgt's axis 0 another batch, RuntimeError
    ((3, 4), (2, 2, 4)),      # ranks: AssertionError
])
def test_transformer_src_tgt_error_type(src_shape, tgt_shape):
    rng = np.random.default_rng(0)
    src, tgt = rng.standard_normal(src_shape), rng.standard_normal(tgt_shape)
    tm = torch.nn.Transformer(4, 2, 1, 1, 8, 0.0, batch_first=True).double()
    fm = nn.Transformer(4, 2, 1, 1, 8, 0.0, batch_first=True, dtype=np.float64)
    _same_error(lambda: tm(torch.from_numpy(src), torch.from_numpy(tgt)), lambda: fm(src, tgt))
