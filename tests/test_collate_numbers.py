"""default_collate as PyTorch's: the dtype of a batch of Python numbers from every
sample (not the first alone, which truncated [1, 2.5] to [1, 2]), and a mapping sample's
own type kept (a defaultdict keeps its factory)."""
import collections

import numpy as np
import pytest

from fastnn.data import DataLoader
from fastnn.data.dataset import default_collate


@pytest.mark.parametrize("batch,dtype,values", [
    # (PyTorch 2.13's default_collate: an int first sample, then a float, gives
    # torch.tensor's default float32; a float first sample float64)
    ([1, 2.5], np.float32, [1.0, 2.5]), ([True, 2.5], np.float32, [1.0, 2.5]),
    ([True, 2], np.int64, [1, 2]),
    ([True, False], np.bool_, [True, False]), ([3, 4], np.int64, [3, 4]),
    ([0.5, 1], np.float64, [0.5, 1.0])])
def test_numbers(batch, dtype, values):
    out = default_collate(batch)
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, values)


def test_dataset_of_mixed_targets():
    class Targets:
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return np.zeros(3, np.float32), [0, 0.75][i]
    (x, y), = list(DataLoader(Targets(), batch_size=2))
    np.testing.assert_array_equal(y, [0.0, 0.75])
    assert y.dtype == np.float32  # (PyTorch's: an int first sample, torch.tensor's default)


def test_mapping_type_kept():
    sample = collections.defaultdict(list, {"a": 1})
    out = default_collate([sample, collections.defaultdict(list, {"a": 2})])
    assert isinstance(out, collections.defaultdict) and out.default_factory is list
    np.testing.assert_array_equal(out["a"], [1, 2])
    assert type(default_collate([{"a": 1.0}])) is dict
    ordered = default_collate([collections.OrderedDict(b=1, a=2)])
    assert isinstance(ordered, collections.OrderedDict) and list(ordered) == ["b", "a"]


def test_a_list_of_samples_is_a_dataset_and_positional_shuffle_works_as_torch():
    (a, b), (c, d) = list(DataLoader([(1, "a"), (2, "b"), (3, "c")], batch_size=2))
    np.testing.assert_array_equal(a, [1, 2])
    assert list(b) == ["a", "b"] and list(d) == ["c"]
    assert len(DataLoader(list(range(40)))) == 40   # batch_size 1, as PyTorch's
    from fastnn.data import TensorDataset
    loader = DataLoader(TensorDataset(np.arange(10.0)), 4, True, seed=0)
    assert loader.batch_size == 4 and loader.shuffle and len(loader) == 3


def test_collate_refuses_what_pytorchs_refuses():
    """Strings, objects and datetimes in arrays (or NumPy scalars) and numbers that are
    no int or float (a Fraction) were stacked or turned into floats; PyTorch's
    default_collate raises a TypeError for each."""
    import fractions
    from torch.utils.data import default_collate as torch_collate
    from fastnn.data import default_collate
    for batch in ([np.array(["a", "b"])] * 2, [np.array([1, 2], object)] * 2,
                  [np.array(["2020-01-01"], "datetime64[D]")] * 2,
                  [np.datetime64("2020-01-01")] * 2, [fractions.Fraction(1, 2)] * 2):
        with pytest.raises(TypeError):
            torch_collate(batch)
        with pytest.raises(TypeError, match="default_collate: batch must contain"):
            default_collate(batch)
    assert default_collate([np.str_("a"), np.str_("b")]) == ["a", "b"]   # strings: a list
