"""Dropout's counter-based mask: right values and rate, reproducible, thread-count free."""
import numpy as np
import pytest

pytest.importorskip("numba")
import fastnn  # noqa: E402
from fastnn import backend as registry  # noqa: E402
from fastnn.threads import get_num_threads  # noqa: E402


@pytest.fixture(scope="module")
def nb():
    return registry.load("numba")


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mask_values_and_rate(nb, p, dtype):
    x = np.ones((1000, 1000), dtype)
    y, mask = nb.dropout_forward(x, p, seed=123)
    scale = dtype(1 / (1 - p))
    assert set(np.unique(mask).tolist()) == {0.0, float(scale)}
    np.testing.assert_array_equal(y, x * mask)
    kept = np.count_nonzero(mask) / mask.size
    sigma = np.sqrt(p * (1 - p) / mask.size)
    assert abs(kept - (1 - p)) < 5 * sigma
    # neighbours independent: P(keep i and keep i+1) = (1 - p)**2
    k = (mask.reshape(-1) != 0)
    both = np.mean(k[:-1] & k[1:])
    assert abs(both - (1 - p) ** 2) < 5 * np.sqrt((1 - p) ** 2 / k.size)
    # no row/column structure: per-row keep rates spread as binomial ones do
    rows = (mask != 0).mean(axis=1)
    assert rows.std() < 2 * np.sqrt(p * (1 - p) / 1000)


def test_same_seed_same_mask_other_seed_other_mask(nb):
    x = np.ones(100_000, np.float32)
    _, a = nb.dropout_forward(x, 0.5, seed=5)
    _, b = nb.dropout_forward(x, 0.5, seed=5)
    _, c = nb.dropout_forward(x, 0.5, seed=6)
    np.testing.assert_array_equal(a, b)
    assert np.mean(a != c) > 0.4


def test_mask_identical_for_any_thread_count(nb):
    x = np.ones(1 << 20, np.float32)
    before = get_num_threads()
    masks = []
    try:
        for n in (1, 2):
            fastnn.set_num_threads(n)
            masks.append(nb.dropout_forward(x, 0.3, seed=11)[1])
    finally:
        fastnn.set_num_threads(before)
    np.testing.assert_array_equal(masks[0], masks[1])


def test_p_zero_keeps_everything_and_backward_multiplies(nb):
    x = np.arange(12, dtype=np.float64).reshape(3, 4)
    y, mask = nb.dropout_forward(x, 0.0, seed=1)
    np.testing.assert_array_equal(y, x)
    np.testing.assert_array_equal(mask, np.ones_like(x))
    _, mask = nb.dropout_forward(x, 0.5, seed=1)
    g = np.full_like(x, 3.0)
    np.testing.assert_array_equal(nb.dropout_backward(g, mask), g * mask)
