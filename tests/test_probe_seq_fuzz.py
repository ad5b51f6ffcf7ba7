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
