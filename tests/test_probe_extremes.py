"""Non-finite and extreme values through the layers and losses, against PyTorch: the
NaN and infinity patterns of outputs and gradients, on every backend and dtype."""
import numpy as np
import pytest
import torch

import fastnn
from fastnn import nn

BACKENDS = fastnn.backends()
DTYPES = pytest.mark.parametrize("dtype", [np.float32, np.float64],
                                 ids=["float32", "float64"])


@DTYPES
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", [{}, dict(label_smoothing=0.1)], ids=["plain", "smooth"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_entropy_all_rows_ignored_keeps_nan_of_nonfinite_rows(backend, options,
                                                                    reduction, dtype):
    # every row ignored: PyTorch's gradient is still its log-softmax backward of a zero
    # gradient, NaN where the log-softmax is NaN (a NaN or +inf logit, a row of -inf)
    x = np.array([[-np.inf, -np.inf, -np.inf], [1, np.inf, 0], [np.nan, 0, 1],
                  [0, 1, 2], [1e30, -1e30, 0]], dtype)
    labels = np.zeros(5, np.int64)
    xt = torch.from_numpy(x).requires_grad_()
    want = torch.nn.functional.cross_entropy(xt, torch.from_numpy(labels), ignore_index=0,
                                             reduction=reduction, **options)
    want.backward(torch.ones_like(want))
    with fastnn.use_backend(backend):
        loss = nn.CrossEntropyLoss(ignore_index=0, reduction=reduction, **options)
        got = loss(x, labels)
        grad = loss.backward(None if reduction != "none" else np.ones(5))
    np.testing.assert_array_equal(np.asarray(got, dtype), want.detach().numpy())
    np.testing.assert_array_equal(grad, xt.grad.numpy())
