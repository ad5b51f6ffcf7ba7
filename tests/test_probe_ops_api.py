"""fastnn.ops as a faster NumPy backend, from a NumPy user's side (audit of 5 Dec,
against PyTorch 2.13 on every CPU backend):

* softmax_cross_entropy with probability targets kept log C for float64 logits of any
  magnitude on the numpy and numba backends, but the Cython kernel added the row's
  log-sum-exp to each m - x_j, which gcc's -fassociative-math turned into
  (m + lse) - x_j: from |m| = 1e12 the loss lost digits, and a row of 1e17s gave 0
  for log 4 (float32 was right);
* NumPy scalar hyper-parameters (np.float32(0.9) for a beta, a dropout p) were read
  as float32 numbers by the numpy backend (1 - dampening, Adam's bias corrections and
  1 / (1 - p) in float32 arithmetic) and by numba (float32 kernels compiled for them),
  as their values by Cython: float64 parameters up to 8e-6 apart between backends.
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


def _update_results(number, dtype):
    """Each optimizer update of a few steps, and dropout's output, with every
    hyper-parameter passed through number (float, or np.float32)."""
    rng = np.random.default_rng(1)
    p0 = rng.standard_normal(300).astype(dtype)
    g = rng.standard_normal(300).astype(dtype)
    zeros = lambda: np.zeros_like(p0)   # noqa: E731
    out = {}
    p, v = p0.copy(), zeros()
    ops.sgd_update(p, g, v, number(0.1), number(0.9), number(0.01), False, number(0.1))
    out["sgd"] = p
    p, m, s = p0.copy(), zeros(), zeros()
    for step in (1, 2, 3):
        ops.adam_update(p, g, m, s, step, number(1e-3), number(0.9), number(0.999),
                        number(1e-8), number(0.01))
    out["adam"] = p
    p, m, u = p0.copy(), zeros(), zeros()
    for step in (1, 2, 3):
        ops.adamax_update(p, g, m, u, step, number(2e-3), number(0.9), number(0.999),
                          number(1e-8), number(0.01))
    out["adamax"] = p
    p, ax = p0.copy(), zeros()
    ops.asgd_update(p, g, ax, number(0.01), number(0.5), number(1e-4), number(0.01))
    out["asgd"] = p
    out["dropout"] = ops.dropout_forward(p0, number(0.3), 5)[1]
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_scalar_hyper_parameters_are_read_as_their_value(backend, dtype):
    # np.float32(0.9) is the number float(np.float32(0.9)) on every backend, as the
    # Cython kernels and fastnn.optim read it: the numpy backend computed 1 - dampening,
    # the bias corrections and 1 / (1 - p) in float32 arithmetic, and numba compiled
    # float32 kernels that did (float64 parameters up to 8e-6 relative off Cython's)
    with fastnn.use_backend(backend):
        given = _update_results(np.float32, dtype)
        as_floats = _update_results(lambda v: float(np.float32(v)), dtype)
    for name in given:
        np.testing.assert_array_equal(given[name], as_floats[name], err_msg=name)
    kept = given["dropout"][given["dropout"] != 0]
    assert np.all(kept == dtype(1 / (1 - float(np.float32(0.3)))))

