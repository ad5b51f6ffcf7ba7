"""The DataLoader batch iterator."""
import numpy as np
import pytest

from fastnn import data
from fastnn.data import DataLoader


def arrays(n=23):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    return x, np.arange(n, dtype=np.int64)


def test_in_order_batches_are_views_covering_everything():
    x, y = arrays()
    loader = DataLoader(x, y, batch_size=5)
    batches = list(loader)
    assert len(loader) == len(batches) == 5
    assert [len(b[1]) for b in batches] == [5, 5, 5, 5, 3]
    assert all(np.shares_memory(bx, x) for bx, _ in batches)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)


@pytest.mark.parametrize("drop_last", [False, True])
def test_shuffle_covers_every_sample_once_and_keeps_pairs(drop_last):
    x, y = arrays()
    loader = DataLoader(x, y, batch_size=5, shuffle=True, seed=1, drop_last=drop_last)
    batches = list(loader)
    seen = np.concatenate([by for _, by in batches])
    for bx, by in batches:
        np.testing.assert_array_equal(bx[:, 0], 2 * by)  # x row still matches its label
        assert not np.shares_memory(bx, x)
    if drop_last:
        assert len(loader) == len(batches) == 4 and all(len(b) == 5 for _, b in batches)
        assert len(np.unique(seen)) == 20
    else:
        np.testing.assert_array_equal(np.sort(seen), y)
    assert not np.array_equal(seen, y[:len(seen)])


def test_seeded_shuffle_is_reproducible_and_changes_per_epoch():
    x, y = arrays()
    first = [by for _, by in DataLoader(x, y, 4, shuffle=True, seed=7)]
    again = [by for _, by in DataLoader(x, y, 4, shuffle=True, seed=7)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    loader = DataLoader(x, y, 4, shuffle=True, seed=np.random.default_rng(7))
    epoch1 = np.concatenate([by for _, by in loader])
    epoch2 = np.concatenate([by for _, by in loader])
    np.testing.assert_array_equal(epoch1, np.concatenate(first))
    assert not np.array_equal(epoch1, epoch2)


def test_x_only_and_tuple_targets():
    x, y = arrays(6)
    assert [b.shape for b in DataLoader(x, batch_size=4)] == [(4, 2), (2, 2)]
    (bx, (b1, b2)), = DataLoader(x, (y, y * 3), batch_size=6, shuffle=True, seed=0)
    np.testing.assert_array_equal(b2, 3 * b1)
    np.testing.assert_array_equal(bx[:, 0], 2 * b1)


def test_bad_arguments():
    x, y = arrays(6)
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(x, y, batch_size=0)
    with pytest.raises(ValueError, match="6 samples"):
        DataLoader(x, y[:5])


def test_unseeded_shuffle_draws_each_pass_from_the_global_generator():
    # as PyTorch's RandomSampler: manual_seed then a pass repeats the order, and building
    # the loader draws nothing (a model built after it gets the same weights)
    import fastnn
    from fastnn import data
    x, y = np.arange(20.0), np.arange(20)
    loader = data.DataLoader(x, y, batch_size=5, shuffle=True)
    fastnn.manual_seed(0)
    first = [batch[1].tolist() for batch in loader]
    fastnn.manual_seed(0)
    assert [batch[1].tolist() for batch in loader] == first
    assert [batch[1].tolist() for batch in loader] != first      # the next pass differs
    fastnn.manual_seed(0)
    weights = fastnn.nn.Linear(3, 2).weight.data.copy()
    fastnn.manual_seed(0)
    data.DataLoader(x, y, batch_size=5, shuffle=True)
    np.testing.assert_array_equal(fastnn.nn.Linear(3, 2).weight.data, weights)


def test_a_dict_is_a_map_style_dataset_as_in_pytorch():
    # PyTorch's DataLoader reads a dict by key (the sampler's elements); fastnn took it
    # for an array and said 'x must have a leading sample axis, got a scalar'
    torch_data = pytest.importorskip("torch.utils.data")

    def plain(batch):
        return [np.asarray(b).tolist() for b in batch] if isinstance(batch, list) \
            else np.asarray(batch).tolist()
    cases = [({"a": 1.5, "b": 2.5, "c": 4.0}, dict(sampler=["c", "a"], batch_size=2)),
             ({0: np.ones(2), 1: np.zeros(2), 2: np.full(2, 3.0)}, dict(batch_size=2)),
             ({0: (1, 2.0), 1: (3, 4.0)}, dict(batch_size=2))]
    for data, kwargs in cases:
        ours = DataLoader(data, **kwargs)
        theirs = torch_data.DataLoader(data, **kwargs)
        assert len(ours) == len(theirs) and ours.dataset is data
        assert [plain(b) for b in ours] == [plain(b) for b in theirs]
    assert list(DataLoader({0: 7, 1: 8, 2: 9}, 2))[1].tolist() == [9]   # positional size


def test_a_tuple_of_samples_is_a_dataset_as_a_list_is():
    # a tuple of (name, label) samples was made one array: NumPy turned the labels into
    # strings ('1', '2') and every sample into a row of a '<U21' array; PyTorch (and
    # fastnn for a list) collates each field
    torch_data = pytest.importorskip("torch.utils.data")

    def plain(batch):
        return [list(f) if isinstance(f, tuple) else np.asarray(f).tolist() for f in batch]
    samples = (("a", 1), ("b", 2), ("c", 3))
    ours = [plain(b) for b in DataLoader(samples, batch_size=2)]
    assert ours == [plain(b) for b in torch_data.DataLoader(samples, batch_size=2)]
    assert ours == [[["a", "b"], [1, 2]], [["c"], [3]]]
    mixed = ((np.ones(2), 1), (np.zeros(2), 2))   # (NumPy refused this one outright)
    (x, y), = DataLoader(mixed, batch_size=2)
    assert x.tolist() == [[1.0, 1.0], [0.0, 0.0]] and y.tolist() == [1, 2]
    assert [b.tolist() for b in DataLoader((4, 5, 6), 2)] == [[4, 5], [6]]


def test_an_iterator_of_the_loader_has_its_length_as_in_pytorch():
    # iter(loader) was a bare generator: len(iter(loader)), which PyTorch's iterator
    # has (dataiter = iter(loader); for _ in range(len(dataiter)): next(dataiter)), was
    # a TypeError
    torch_data = pytest.importorskip("torch.utils.data")
    x, y = arrays(7)
    for kwargs in (dict(batch_size=3), dict(batch_size=3, drop_last=True),
                   dict(batch_size=None)):
        ours, theirs = iter(DataLoader(list(y), **kwargs)), iter(
            torch_data.DataLoader(list(y), **kwargs))
        assert len(ours) == len(theirs) and iter(ours) is ours
        first = next(ours)
        assert len(ours) == len(theirs)   # (still the pass's length, as PyTorch's)
        rest = [np.asarray(b).tolist() for b in ours]
        assert [np.asarray(first).tolist()] + rest == [np.asarray(b).tolist()
                                                        for b in theirs]
    dataiter = iter(DataLoader(x, y, batch_size=3, shuffle=True, seed=0))
    labels = np.concatenate([next(dataiter)[1] for _ in range(len(dataiter))])
    assert sorted(labels.tolist()) == list(range(7))
    with pytest.raises(StopIteration):
        next(dataiter)


def _seed_recorder():
    """([the worker seeds seen], a worker_init_fn recording them, a 4-sample Dataset)."""
    from fastnn import data as fd
    seen = []

    def init(worker_id):
        seen.append(fd.get_worker_info().seed)

    class Samples(fd.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return np.float32(i)
    return seen, init, Samples


def test_worker_seeds_change_every_pass_that_does_not_shuffle():
    """Nothing advances the generator between passes that do not shuffle, and each such
    pass gave worker_init_fn the same seed: augmentation seeded there repeated every
    epoch (PyTorch draws a new base seed each pass). The seeds still repeat after
    fastnn.manual_seed and under a loader seed."""
    import fastnn
    from fastnn import data as fd

    seen, init, Samples = _seed_recorder()

    def seeds(loader, passes=3):
        del seen[:]
        for _ in range(passes):
            list(loader)
        return list(seen)

    loader = fd.DataLoader(Samples(), batch_size=2, num_workers=2, worker_init_fn=init)
    fastnn.manual_seed(7)
    first = seeds(loader)
    assert len(set(first)) == 3
    fastnn.manual_seed(7)
    assert seeds(loader) == first
    kept = [seeds(fd.DataLoader(Samples(), batch_size=2, num_workers=2, seed=4,
                                worker_init_fn=init)) for _ in range(2)]
    assert kept[0] == kept[1] and len(set(kept[0])) == 3
    class Stream(fd.IterableDataset):
        def __iter__(self):
            return iter(range(3))

    stream = fd.DataLoader(Stream(), batch_size=None, num_workers=1, worker_init_fn=init)
    assert len(set(seeds(stream))) == 3


def test_worker_seeds_of_passes_that_do_not_shuffle_resume_from_the_generator_state():
    """The seeds were counted by a loader's private pass counter: a run resumed from
    fastnn.random.get_state() in a fresh loader replayed epoch 0's augmentation, and a
    set_state between epochs (fastnn.random.fork, gradcheck) restarted the count. A pass
    that leaves the generator as it found it now draws one number from it when it ends,
    so the seeds follow the generator's state alone, as PyTorch's base seeds."""
    import fastnn
    from fastnn import data as fd

    seen, init, Samples = _seed_recorder()

    def loader():
        return fd.DataLoader(Samples(), batch_size=2, num_workers=1, worker_init_fn=init)

    fastnn.manual_seed(0)
    run, states = loader(), []
    for _ in range(4):
        states.append(fastnn.random.get_state())
        list(run)
    uninterrupted = list(seen)
    assert len(set(uninterrupted)) == 4
    for epoch in (1, 3):      # resumed: a new loader and the state saved at that epoch
        del seen[:]
        fastnn.random.set_state(states[epoch])
        list(loader())
        assert seen == [uninterrupted[epoch]]
    del seen[:]
    fastnn.manual_seed(0)
    for _ in range(4):        # a state set in between (fork's restore) changes nothing
        with fastnn.random.fork(5):
            pass
        list(run)
    assert seen == uninterrupted
    del seen[:]
    fastnn.manual_seed(0)
    it = iter(run)            # a pass dropped half-way ends there
    next(it)
    del it
    list(run)
    assert seen == uninterrupted[:2]


def test_a_tensor_dataset_batch_is_the_callers_own():
    """In-order batches of a TensorDataset were views of its arrays: a batch changed in
    place changed the dataset (PyTorch's default_collate stacks a new tensor). The array
    form DataLoader(x, y) keeps its documented views."""
    from fastnn import data as fd
    x, y = np.zeros((6, 2), np.float32), np.arange(6)
    for _ in range(2):
        for xb, yb in fd.DataLoader(fd.TensorDataset(x, y), batch_size=3):
            assert not np.shares_memory(xb, x) and not np.shares_memory(yb, y)
            xb += 1
    np.testing.assert_array_equal(x, 0)
    xb, _ = next(iter(fd.DataLoader(fd.Subset(fd.TensorDataset(x, y), [0, 1]), batch_size=2)))
    assert not np.shares_memory(xb, x)
    xb, _ = next(iter(fd.DataLoader(x, y, batch_size=3)))
    assert np.shares_memory(xb, x)


def test_an_array_with_a_positional_batch_size_batches_its_rows_as_torch():
    """DataLoader(X, 4) (PyTorch's DataLoader(tensor, 4)) was read as x with a target
    array of shape () ('x holds 10 samples but a target array has shape ()'), and
    DataLoader(X, 4, True) as a bool batch size."""
    import torch
    from fastnn import data as fd
    x = np.arange(20.0).reshape(10, 2)
    ours = [b for b in fd.DataLoader(x, 4)]
    theirs = [b.numpy() for b in torch.utils.data.DataLoader(torch.from_numpy(x), 4)]
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
    shuffled = list(fd.DataLoader(x, 4, True, seed=0))
    assert [len(b) for b in shuffled] == [4, 4, 2]
    np.testing.assert_array_equal(np.sort(np.concatenate(shuffled)[:, 0]), x[:, 0])
    with pytest.raises(TypeError, match="got batch_size twice"):
        fd.DataLoader(x, 4, batch_size=3)


def test_collate_fn_attribute_is_the_default_one_as_pytorchs():
    """loader.collate_fn was None when none was given, where PyTorch's DataLoader holds
    default_collate (default_convert with batch_size=None), so code collating a batch by
    hand with loader.collate_fn(samples) failed ('NoneType' is not callable)."""
    ds = data.TensorDataset(np.arange(12.0).reshape(6, 2), np.arange(6))
    loader = data.DataLoader(ds, batch_size=4)
    assert loader.collate_fn is data.default_collate
    assert data.DataLoader(ds, batch_size=None).collate_fn is data.default_convert
    assert data.DataLoader(np.zeros((3, 2)), batch_size=2).collate_fn is data.default_collate
    by_hand = loader.collate_fn([ds[i] for i in range(4)])
    first = next(iter(loader))
    for mine, theirs in zip(by_hand, first):
        np.testing.assert_array_equal(mine, theirs)
    # one given is kept; set afterwards it is used from the next pass, and None is the
    # default again (the TensorDataset still gathered whole)
    def total(samples):
        return sum(int(s[1]) for s in samples)
    assert data.DataLoader(ds, batch_size=4, collate_fn=total).collate_fn is total
    loader.collate_fn = total
    assert list(loader) == [0 + 1 + 2 + 3, 4 + 5]
    loader.collate_fn = None
    assert loader.collate_fn is data.default_collate
    assert [b[1].tolist() for b in loader] == [[0, 1, 2, 3], [4, 5]]
    # a batch_sampler batches (PyTorch's batch_size is None then): default_collate
    with_batches = data.DataLoader(ds, batch_sampler=[[0, 1], [2]])
    assert with_batches.collate_fn is data.default_collate
