"""Regression tests from a seeded differential fuzz of the losses (fastnn.nn and
fastnn.nn.functional) against PyTorch: values, the gradients backward returns, and the
exception types of refused inputs."""
import numpy as np
import pytest

from fastnn import nn
from fastnn.nn import functional as F

torch = pytest.importorskip("torch")

_LP = np.log(np.full((4, 2, 3), 1 / 3))
_ONES = np.ones((2, 1), np.int64)


@pytest.mark.parametrize("log_probs, targets, input_lengths, target_lengths, blank", [
    (np.zeros((0, 2, 3)), _ONES, [0, 0], [1, 1], 0),          # empty log_probs
    (_LP, _ONES, [4, 4], [1, 1], 3),                          # blank >= C
    (_LP, _ONES, [5, 4], [1, 1], 0),                          # input length > T
    (_LP, np.ones(3, np.int64), [4, 4], [1, 1], 0),           # concatenated: wrong length
    (_LP, _ONES, [4, 4], [2, 1], 0),                          # padded: too short
    (_LP, np.ones((3, 2), np.int64), [4, 4], [1, 1], 0),      # padded: wrong batch
    (_LP, _ONES, [4, 4, 4], [1, 1], 0),                       # one length too many
    (_LP, _ONES, [-1, 4], [1, 1], 0),                         # negative lengths
    (_LP, _ONES, [4, 4], [-1, 1], 0),
    (_LP, np.ones((2, 1, 1), np.int64), [4, 4], [1, 1], 0),   # 3-D targets
    (_LP[0, 0], np.ones(1, np.int64), [4], [1], 0),           # 1-D log_probs
])
def test_ctc_bad_shapes_and_lengths_are_torchs_runtime_error(log_probs, targets, input_lengths,
                                                             target_lengths, blank):
    # PyTorch raises RuntimeError for each; fastnn raised a bare ValueError
    with pytest.raises(RuntimeError):
        torch.nn.functional.ctc_loss(torch.from_numpy(log_probs), torch.from_numpy(targets),
                                     input_lengths, target_lengths, blank=blank)
    with pytest.raises(ValueError) as caught:
        nn.CTCLoss(blank=blank)(log_probs, targets, input_lengths, target_lengths)
    assert isinstance(caught.value, RuntimeError)
    with pytest.raises(RuntimeError):
        F.ctc_loss(log_probs, targets, input_lengths, target_lengths, blank=blank)
