"""fastnn.ops as a faster NumPy backend, from a NumPy user's side (audit of 5 Dec,
against PyTorch 2.13 on every CPU backend):

* softmax_cross_entropy with probability targets kept log C for float64 logits of any
  magnitude on the numpy and numba backends, but the Cython kernel added the row's
  log-sum-exp to each m - x_j, which gcc's -fassociative-math turned into
  (m + lse) - x_j: from |m| = 1e12 the loss lost digits, and a row of 1e17s gave 0
  for log 4 (float32 was right).
"""
import numpy as np
import pytest

import fastnn
from fastnn import ops

torch = pytest.importorskip("torch")

BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]
DTYPES = [np.float32, np.float64]


def _torch_ce(logits, target):
    """PyTorch's cross-entropy of probability targets in float64: (loss, gradient)."""
    x = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(x, torch.tensor(target, dtype=torch.float64))
    loss.backward()
    return loss.item(), x.grad.numpy()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("magnitude", [1e12, 1e17, 1e30, -1e17, -1e38])
@pytest.mark.parametrize("classes", [4, 19])   # the eight-lane loop alone, and with a tail
def test_soft_target_cross_entropy_keeps_log_sum_exp_at_large_logits(backend, dtype,
                                                                      magnitude, classes):
    # constant rows: log_softmax is -log C whatever the magnitude; a second row whose
    # steps of 1 float64 holds exactly at 1e12 (float32 rounds them: compared as rounded)
    rng = np.random.default_rng(0)
    logits = np.full((2, classes), magnitude, dtype)
    if abs(magnitude) <= 1e12:
        logits[1] = magnitude - np.arange(classes)
    target = rng.uniform(0, 1, (2, classes)).astype(dtype)
    target /= target.sum(1, keepdims=True)
    with fastnn.use_backend(backend):
        loss, grad = ops.softmax_cross_entropy(logits, target)
    want, want_grad = _torch_ce(logits, target)
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    assert loss == pytest.approx(want, rel=rtol), (loss, want)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-5, atol=1e-7)
