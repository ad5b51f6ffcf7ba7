"""scikit-learn's bundled 8x8 handwritten digits (1,797 images; no download needed)."""
import numbers

import numpy as np

from ..errors import MissingDependencyError
from .pixels import to_unit_float

TEST_FRACTION = 0.2
SPLIT_SEED = 0


def load_digits(flatten=False, seed=SPLIT_SEED, test_fraction=TEST_FRACTION,
                dtype=np.float32):
    """The digits data set with a fixed, seeded train/test split.

    Returns (x_train, y_train, x_test, y_test): x float32 (or ``dtype``: float64) in
    [0, 1], pixel / 16, of shape (N, 8, 8) (or (N, 64) with ``flatten``), y int64 of
    shape (N,). The split is a seeded permutation: 1,438 training and 359 test images
    by default; ``test_fraction`` (in [0, 1]) of the images, rounded, are the test ones.
    Needs scikit-learn (``pip install scikit-learn``).
    """
    if (isinstance(test_fraction, bool) or not isinstance(test_fraction, numbers.Real)
            or not 0 <= test_fraction <= 1):   # (a negative one swapped the two splits)
        raise ValueError(f"load_digits: test_fraction must be a number in [0, 1], got "
                         f"{test_fraction!r}")
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:
        raise MissingDependencyError("the digits data set comes with scikit-learn: "
                                     "pip install scikit-learn") from None
    bunch = sk_load_digits()
    x = to_unit_float(bunch.data, 16, dtype)  # pixel values are 0..16
    y = bunch.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    test, train = order[:n_test], order[n_test:]
    if not flatten:
        x = x.reshape(-1, 8, 8)
    return x[train], y[train], x[test], y[test]
