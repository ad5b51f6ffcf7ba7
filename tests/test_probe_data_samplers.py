"""fastnn.data's samplers and DataLoader's sampler / batch_sampler / multiprocessing
arguments against torch.utils.data's.

Pins what the probe added: there were no Sampler classes, and DataLoader refused
``sampler``, ``batch_sampler``, ``worker_init_fn``, ``persistent_workers``,
``prefetch_factor``, ``timeout``, ``multiprocessing_context``, ``pin_memory_device`` and
``in_order`` (a TypeError), so ``DataLoader(ds, shuffle=True, num_workers=4,
persistent_workers=True)`` or ``DataLoader(ds, sampler=WeightedRandomSampler(w, n))``
failed. Orders that do not depend on the generator are compared index for index with
PyTorch's; random ones statistically, and for reproducibility.
"""
import collections

import numpy as np
import pytest

import fastnn
from fastnn import data
from fastnn.errors import IndexValueError

torch = pytest.importorskip("torch")
tdata = torch.utils.data


def to_numpy(batch):
    if isinstance(batch, torch.Tensor):
        return batch.numpy()
    if isinstance(batch, (list, tuple)):
        return [to_numpy(v) for v in batch]
    return batch


def assert_same_batches(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        a, b = (a if isinstance(a, (list, tuple)) else [a]), to_numpy(b)
        b = b if isinstance(b, list) else [b]
        assert len(a) == len(b)
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
            assert np.asarray(u).dtype == np.asarray(v).dtype


def arrays(n=10):
    x = np.arange(3 * n, dtype=np.float32).reshape(n, 3)
    return x, np.arange(n, dtype=np.int64) * 10


def raises_as_torch(ours, theirs, match=None):
    """ours raises a ValueError that is also the type theirs (PyTorch) raises."""
    with pytest.raises(Exception) as expected:
        theirs()
    with pytest.raises(ValueError, match=match) as got:
        ours()
    assert isinstance(got.value, type(expected.value)), (got.value, expected.value)


# ------------------------------------------------------------ deterministic orders
def test_sequential_and_batch_samplers_match_torch_index_for_index():
    cases = 0
    for n in (0, 1, 5, 12):
        assert list(data.SequentialSampler(range(n))) == list(tdata.SequentialSampler(range(n)))
        assert len(data.SequentialSampler(np.zeros((n, 2)))) == n
        for batch_size in (1, 3, 5, 13):
            for drop_last in (False, True):
                for source in (lambda: data.SequentialSampler(range(n)),
                               lambda: [7 * i % 11 for i in range(n)],
                               lambda: list(range(n))[::-1]):
                    ours = data.BatchSampler(source(), batch_size, drop_last)
                    theirs = tdata.BatchSampler(source(), batch_size, drop_last)
                    assert list(ours) == list(theirs)
                    assert list(ours) == list(theirs)          # a second pass too
                    assert len(ours) == len(theirs)
                    cases += 1
                # an iterable without len (a generator) batches the same
                gen = (i * 2 for i in range(n))
                assert (list(data.BatchSampler(gen, batch_size, drop_last))
                        == list(tdata.BatchSampler((i * 2 for i in range(n)), batch_size,
                                                   drop_last)))
    assert cases == 96
    assert all(type(i) is int for b in data.BatchSampler(data.SequentialSampler(range(9)),
                                                         4, False) for i in b)


@pytest.mark.parametrize("form", ["tensor_dataset", "arrays", "subset", "custom"])
def test_loader_given_a_sampler_list_matches_torch(form):
    x, y = arrays(10)
    tds = tdata.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))

    class Custom(data.Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return x[i], y[i]

    def ours_loader(**kw):
        if form == "arrays":
            return data.DataLoader(x, y, **kw)
        if form == "subset":
            inner = data.TensorDataset(np.concatenate([x[::-1], x]),
                                       np.concatenate([y[::-1], y]))
            return data.DataLoader(data.Subset(inner, list(range(10, 20))), **kw)
        return data.DataLoader(data.TensorDataset(x, y) if form == "tensor_dataset"
                               else Custom(), **kw)

    order = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, -1, 0]   # repeats and a negative index
    for batch_size in (1, 2, 5, 13, 20):
        for drop_last in (False, True):
            ours = ours_loader(sampler=order, batch_size=batch_size, drop_last=drop_last)
            theirs = tdata.DataLoader(tds, sampler=order, batch_size=batch_size,
                                      drop_last=drop_last)
            assert len(ours) == len(theirs)
            got = [list(b) for b in ours]
            assert_same_batches(got, list(theirs))
    batches = [[2, 0], [9], [4, 4, 1]]
    ours = ours_loader(batch_sampler=batches)
    theirs = tdata.DataLoader(tds, batch_sampler=batches)
    assert len(ours) == len(theirs) == 3 and ours.batch_size is None
    assert_same_batches([list(b) for b in ours], list(theirs))
    # the same index list given as a BatchSampler over a fastnn sampler
    ours = ours_loader(batch_sampler=data.BatchSampler(order, 4, True))
    theirs = tdata.DataLoader(tds, batch_sampler=tdata.BatchSampler(order, 4, True))
    assert_same_batches([list(b) for b in ours], list(theirs))


def test_random_index_lists_and_batch_cuts_match_torch():
    rng = np.random.default_rng(0)
    for trial in range(160):
        n = int(rng.integers(1, 12))
        x = rng.standard_normal((n, 2)).astype(np.float32)
        y = rng.integers(0, 5, n)
        tds = tdata.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
        order = rng.integers(-n, n, int(rng.integers(0, 15))).tolist()
        mode = trial // 4 % 3
        if mode == 0:
            kw = dict(sampler=order, batch_size=int(rng.integers(1, 6)),
                      drop_last=bool(rng.integers(0, 2)))
        elif mode == 1:
            kw = dict(sampler=order, batch_size=None)
        else:
            cuts = sorted(rng.integers(0, len(order) + 1, 3).tolist())
            kw = dict(batch_sampler=[order[a:b] for a, b in zip([0] + cuts, cuts + [len(order)])
                                     if b > a])
        doubled = data.TensorDataset(np.concatenate([x, x]), np.concatenate([y, y]))
        ours = [data.DataLoader(x, y, **kw), data.DataLoader(data.TensorDataset(x, y), **kw),
                data.DataLoader(data.Subset(doubled, list(range(n, 2 * n))), **kw),
                data.DataLoader([(x[i], y[i]) for i in range(n)], **kw)][trial % 4]
        theirs = tdata.DataLoader(tds, **kw)
        assert len(ours) == len(theirs)
        assert_same_batches([list(b) for b in ours], list(theirs))


def test_unbatched_sampler_and_len_match_torch():
    x, y = arrays(6)
    ds = data.TensorDataset(x, y)
    tds = tdata.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    ours = data.DataLoader(ds, sampler=[5, 0, 5], batch_size=None)
    theirs = tdata.DataLoader(tds, sampler=[5, 0, 5], batch_size=None)
    assert len(ours) == len(theirs) == 3
    assert_same_batches(list(ours), list(theirs))
    assert [int(b[1]) for b in data.DataLoader(x, y, sampler=[2, 4], batch_size=None)] \
        == [20, 40]
    assert len(data.DataLoader(ds, sampler=[1, 2, 3], batch_size=2, drop_last=True)) == 1
    # a sampler without __len__: len(loader) is PyTorch's TypeError, iterating works
    for loader in (data.DataLoader(ds, sampler=iter([1, 2])),
                   tdata.DataLoader(tds, sampler=iter([1, 2]))):
        with pytest.raises(TypeError):
            len(loader)


def test_batch_sampler_as_sampler_and_getitems_match_torch():
    x, y = arrays(10)
    tds = tdata.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    # sampler=BatchSampler(...), batch_size=None: dataset[list] per step, as PyTorch's
    ours = data.DataLoader(data.TensorDataset(x, y), batch_size=None,
                           sampler=data.BatchSampler(range(10), 4, False))
    theirs = tdata.DataLoader(tds, batch_size=None, sampler=tdata.BatchSampler(range(10), 4,
                                                                              False))
    assert len(ours) == len(theirs) == 3
    assert_same_batches(list(ours), list(theirs))
    arrays_form = data.DataLoader(x, y, batch_size=None,
                                  sampler=data.BatchSampler([9, 0, 4], 2, False))
    assert_same_batches([list(b) for b in arrays_form],
                        list(tdata.DataLoader(tds, batch_size=None,
                                              sampler=tdata.BatchSampler([9, 0, 4], 2, False))))

    def many(base):
        class Many(base):
            def __len__(self):
                return 10

            def __getitems__(self, indices):
                return [(i, 2 * i) for i in indices]
        return Many()
    assert_same_batches(list(data.DataLoader(many(data.Dataset), sampler=[3, 1, 2],
                                             batch_size=2)),
                        list(tdata.DataLoader(many(tdata.Dataset), sampler=[3, 1, 2],
                                              batch_size=2)))
    # lengths over random samplers drawing more or fewer samples than the data holds
    for k, batch_size, drop_last in ((7, 3, False), (7, 3, True), (25, 4, False)):
        ours = data.DataLoader(x, y, batch_size=batch_size, drop_last=drop_last,
                               sampler=data.RandomSampler(x, replacement=True, num_samples=k))
        theirs = tdata.DataLoader(tds, batch_size=batch_size, drop_last=drop_last,
                                  sampler=tdata.RandomSampler(tds, replacement=True,
                                                              num_samples=k))
        assert len(ours) == len(theirs) == len(list(ours))
        assert sum(len(b) for _, b in ours) == sum(len(b) for _, b in theirs)
    # an empty batch from a batch sampler: PyTorch's collate fails (IndexError)
    for loader in (data.DataLoader(x, y, batch_sampler=[[1], []]),
                   data.DataLoader(data.TensorDataset(x, y), batch_sampler=[[1], []]),
                   tdata.DataLoader(tds, batch_sampler=[[1], []])):
        with pytest.raises(IndexError):
            list(loader)


def test_sampler_subclass_and_keys_reach_the_dataset_as_they_are():
    class Reversed(data.Sampler[int]):       # PyTorch's subscripted base works
        def __init__(self, source):
            self.source = source

        def __iter__(self):
            return iter(range(len(self.source) - 1, -1, -1))

        def __len__(self):
            return len(self.source)

    x, y = arrays(5)
    loader = data.DataLoader(x, y, batch_size=2, sampler=Reversed(x))
    assert [b[1].tolist() for b in loader] == [[40, 30], [20, 10], [0]]
    table = {"a": np.float32(1), "b": np.float32(2)}

    class Keyed(data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, key):
            return table[key]

    batches = list(data.DataLoader(Keyed(), sampler=["b", "a", "b"], batch_size=2))
    assert [b.tolist() for b in batches] == [[2.0, 1.0], [2.0]]
    assert list(data.SubsetRandomSampler(["k"], generator=0)) == ["k"]
    with pytest.raises(NotImplementedError):
        iter(data.Sampler())
    with pytest.raises(TypeError):
        len(data.Sampler())


def test_tensor_dataset_keeps_its_fast_path_with_a_sampler(monkeypatch):
    def no_sample_reads(self, index):
        raise AssertionError("TensorDataset read sample by sample")
    monkeypatch.setattr(data.TensorDataset, "__getitem__", no_sample_reads)
    x, y = arrays(12)
    takes = []
    real_take = np.take

    def counting_take(a, rows, **kw):
        takes.append(len(rows))
        return real_take(a, rows, **kw)
    monkeypatch.setattr(np, "take", counting_take)
    ds = data.TensorDataset(x, y)
    for sampler in ([0, 3, 3, 11, 2], data.RandomSampler(ds, generator=1),
                    data.WeightedRandomSampler(np.ones(12), 7, generator=2),
                    data.SubsetRandomSampler(np.arange(2, 9), generator=3)):
        takes.clear()
        batches = list(data.DataLoader(ds, batch_size=4, sampler=sampler))
        assert len(takes) == 2 * len(batches)            # one np.take per array per batch
        for bx, by in batches:
            np.testing.assert_array_equal(bx[:, 0], 3 * by // 10)   # rows stay paired
    takes.clear()
    batches = list(data.DataLoader(ds, batch_size=5, sampler=data.SequentialSampler(ds)))
    # in order: slices, copied (a batch is the caller's, as PyTorch's stacked one), no take
    assert not takes and not any(np.shares_memory(bx, x) for bx, _ in batches)
    np.testing.assert_array_equal(np.concatenate([bx for bx, _ in batches]), x)


# ------------------------------------------------------------------ random orders
def test_random_sampler_permutes_and_repeats_under_seed_and_manual_seed():
    src = range(9)
    sampler = data.RandomSampler(src, generator=5)
    first, second = list(sampler), list(sampler)
    assert sorted(first) == sorted(second) == list(src) and first != second
    assert list(data.RandomSampler(src, generator=5)) == first   # the same seed
    assert list(data.RandomSampler(src, generator=np.random.default_rng(5))) == first
    long = list(data.RandomSampler(src, num_samples=22, generator=0))
    assert len(long) == 22 and sorted(long[:9]) == sorted(long[9:18]) == list(src)
    assert len(set(long[18:])) == 4                                 # a cut permutation
    short = list(data.RandomSampler(src, num_samples=4, generator=0))
    assert len(set(short)) == 4
    # generator=None: one draw from fastnn's generator per pass, when the pass starts
    unseeded = data.RandomSampler(src)
    fastnn.manual_seed(3)
    a = list(unseeded)
    fastnn.manual_seed(3)
    assert list(data.RandomSampler(src)) == a
    fastnn.manual_seed(3)
    data.RandomSampler(src)
    data.WeightedRandomSampler([1.0, 2.0], 3)
    assert list(unseeded) == a       # building samplers drew nothing
    # DataLoader(shuffle=True, seed=s) is DataLoader(sampler=RandomSampler(generator=s))
    x, y = arrays(11)
    shuffled = data.DataLoader(x, y, batch_size=4, shuffle=True, seed=8)
    sampled = data.DataLoader(x, y, batch_size=4, sampler=data.RandomSampler(x, generator=8))
    for _ in range(2):
        for (_, a), (_, b) in zip(shuffled, sampled):
            np.testing.assert_array_equal(a, b)
    assert isinstance(shuffled.sampler, data.RandomSampler)
    assert isinstance(data.DataLoader(x).sampler, data.SequentialSampler)
    assert data.DataLoader(x, batch_size=3).batch_sampler.batch_size == 3


def test_random_sampler_with_replacement_is_uniform():
    draws = np.array(list(data.RandomSampler(range(5), replacement=True, num_samples=20000,
                                             generator=0)))
    counts = np.bincount(draws, minlength=5)
    assert draws.min() >= 0 and draws.max() < 5
    assert np.all(np.abs(counts - 4000) < 5 * np.sqrt(20000 * 0.2 * 0.8))
    assert len(data.RandomSampler(range(3), replacement=True, num_samples=7)) == 7
    # fewer draws than samples, with replacement: repeats come (birthday: ~1 - 1e-6)
    few = list(data.RandomSampler(range(100), replacement=True, num_samples=60, generator=1))
    assert len(few) == 60 and len(set(few)) < 60
    fastnn.manual_seed(4)
    a = list(data.RandomSampler(range(100), replacement=True))
    fastnn.manual_seed(4)
    assert list(data.RandomSampler(range(100), replacement=True)) == a and len(a) == 100


def test_weighted_sampler_frequencies_with_and_without_replacement():
    w = np.array([1.0, 2.0, 0.0, 3.0, 4.0])
    draws = np.array(list(data.WeightedRandomSampler(w, 40000, generator=1)))
    p = w / w.sum()
    counts = np.bincount(draws, minlength=5)
    assert counts[2] == 0
    assert np.all(np.abs(counts - 40000 * p) <= 5 * np.sqrt(40000 * p * (1 - p)) + 1)
    # without replacement: successive sampling, P(i then j) = p_i * w_j / (W - w_i),
    # the law torch.multinomial(replacement=False) follows
    sampler = data.WeightedRandomSampler(w, 2, replacement=False, generator=2)
    pairs = collections.Counter(tuple(next(zip(*[iter(sampler)] * 2))) for _ in range(6000))
    W = w.sum()
    for (i, j), count in pairs.items():
        assert i != j and w[i] > 0 and w[j] > 0
    for i in range(5):
        for j in range(5):
            if i != j and w[i] and w[j]:
                expect = 6000 * w[i] / W * w[j] / (W - w[i])
                assert abs(pairs[(i, j)] - expect) <= 5 * np.sqrt(expect) + 2, (i, j)
    # all of them: a permutation with the zero weight last, as torch.multinomial's
    for order in (list(data.WeightedRandomSampler(w, 5, replacement=False, generator=s))
                  for s in range(20)):
        assert sorted(order) == list(range(5)) and order[-1] == 2
    for s in range(10):   # more than the positive weights: the zero weights after them
        order = list(data.WeightedRandomSampler([0.0, 3.0, 0.0, 0.0], 3, replacement=False,
                                                generator=s))
        assert order[0] == 1 and len(set(order)) == 3
    theirs = list(tdata.WeightedRandomSampler(w.tolist(), 5, replacement=False))
    assert sorted(theirs) == list(range(5)) and theirs[-1] == 2
    # reproducible under a seed and under fastnn.manual_seed
    assert (list(data.WeightedRandomSampler(w, 9, generator=4))
            == list(data.WeightedRandomSampler(w, 9, generator=4)))
    fastnn.manual_seed(1)
    a = list(data.WeightedRandomSampler(w, 9))
    fastnn.manual_seed(1)
    assert list(data.WeightedRandomSampler(w, 9)) == a
    assert len(data.WeightedRandomSampler([1, 1], 7)) == 7
    # the loader reads the weighted indices' rows, paired
    x, y = arrays(5)
    for bx, by in data.DataLoader(x, y, batch_size=8,
                                  sampler=data.WeightedRandomSampler(w, 30, generator=0)):
        assert 20 not in by.tolist()
        np.testing.assert_array_equal(bx[:, 0], 3 * by // 10)


def test_subset_random_sampler_permutes_its_indices():
    idx = [4, 8, 15, 16, 23, 42]
    sampler = data.SubsetRandomSampler(idx, generator=0)
    a, b = list(sampler), list(sampler)
    assert sorted(a) == sorted(b) == idx and len(sampler) == 6 and a != b
    assert list(data.SubsetRandomSampler(idx, generator=0)) == a
    assert all(type(i) is int for i in a)
    fastnn.manual_seed(2)
    c = list(data.SubsetRandomSampler(np.array(idx)))
    fastnn.manual_seed(2)
    assert list(data.SubsetRandomSampler(np.array(idx))) == c
    firsts = collections.Counter(next(iter(data.SubsetRandomSampler(idx, generator=s)))
                                 for s in range(3000))
    assert set(firsts) == set(idx) and min(firsts.values()) > 3000 / 6 - 5 * np.sqrt(417)


# ----------------------------------------------------------------- argument checks
def test_sampler_argument_checks_match_torch():
    cases = [
        (lambda m: m.RandomSampler(range(3), num_samples=0), None),
        (lambda m: m.RandomSampler(range(3), num_samples=2.0), None),
        (lambda m: m.RandomSampler(range(3), num_samples=-1), None),
        (lambda m: m.RandomSampler(range(0)), "num_samples=0"),
        (lambda m: m.RandomSampler(range(3), replacement=1), "replacement"),
        (lambda m: m.WeightedRandomSampler([1, 2], 0), None),
        (lambda m: m.WeightedRandomSampler([1, 2], 2.0), None),
        (lambda m: m.WeightedRandomSampler([1, 2], True), None),
        (lambda m: m.WeightedRandomSampler([1, 2], 2, replacement=1), "replacement"),
        (lambda m: m.WeightedRandomSampler([[1, 2]], 2), "1d"),
        (lambda m: m.WeightedRandomSampler(3.0, 2), "1d"),
        (lambda m: list(m.WeightedRandomSampler([1, -1, 2], 2)), "< 0"),
        (lambda m: list(m.WeightedRandomSampler([0, 0], 2)), "sum"),
        (lambda m: list(m.WeightedRandomSampler([], 2)), "sum"),
        (lambda m: list(m.WeightedRandomSampler([1, float("inf")], 2)), "infinity or NaN"),
        (lambda m: list(m.WeightedRandomSampler([1, 2], 3, replacement=False)), "n_sample"),
        (lambda m: m.BatchSampler(range(5), 0, False), "batch_size"),
        (lambda m: m.BatchSampler(range(5), 2.0, False), "batch_size"),
        (lambda m: m.BatchSampler(range(5), True, False), "batch_size"),
        (lambda m: m.BatchSampler(range(5), 2, 0), "drop_last"),
    ]
    for make, match in cases:
        raises_as_torch(lambda: make(data), lambda: make(tdata), match)
    assert len(cases) == 20


def test_loader_argument_checks_match_torch():
    x, y = arrays(6)
    tds = tdata.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    cases = [
        (dict(sampler=[1, 2], shuffle=True), "mutually exclusive with shuffle"),
        (dict(batch_sampler=[[1, 2]], batch_size=2), "batch_sampler option is mutually"),
        (dict(batch_sampler=[[1, 2]], shuffle=True), "batch_sampler option is mutually"),
        (dict(batch_sampler=[[1, 2]], sampler=[1]), "batch_sampler option is mutually"),
        (dict(batch_sampler=[[1, 2]], drop_last=True), "batch_sampler option is mutually"),
        (dict(batch_sampler=[[1, 2]], batch_size=None), "batch_sampler option is mutually"),
        (dict(persistent_workers=True), "persistent_workers option needs num_workers > 0"),
        (dict(prefetch_factor=2), "prefetch_factor"),
        (dict(num_workers=2, prefetch_factor=-1), "prefetch_factor"),
        (dict(timeout=-1), "timeout option should be non-negative"),
        (dict(multiprocessing_context="spawn"), "num_workers > 0"),
        (dict(num_workers=1, multiprocessing_context="bogus"), "valid start method"),
        (dict(num_workers=1, multiprocessing_context=3), "valid context object"),
        (dict(sampler=[1, 9]), "out of range"),
    ]
    for form in ("dataset", "arrays"):
        for kwargs, match in cases:
            def ours():
                loader = (data.DataLoader(data.TensorDataset(x, y), **kwargs)
                          if form == "dataset" else data.DataLoader(x, y, **kwargs))
                return list(loader)
            raises_as_torch(ours, lambda: list(tdata.DataLoader(tds, **kwargs)), match)
    # PyTorch asserts timeout == 0 without workers when the pass starts; fastnn when built
    raises_as_torch(lambda: data.DataLoader(x, y, timeout=5),
                    lambda: list(tdata.DataLoader(tds, timeout=5)), "num_workers > 0")
    with pytest.raises(IndexValueError):
        list(data.DataLoader(x, y, sampler=[0.5]))
    # out of range wherever the rows are read: arrays, a Subset's index, collate_fn,
    # unbatched, and a SequentialSampler longer than the data
    sub = data.Subset(data.TensorDataset(x, y), [0, 1])
    for loader in (data.DataLoader(x, y, sampler=[2, -7]),
                   data.DataLoader(sub, sampler=[2]),
                   data.DataLoader(x, y, sampler=[6], collate_fn=list),
                   data.DataLoader(x, y, sampler=[6], batch_size=None),
                   data.DataLoader(x, sampler=data.SequentialSampler(range(8)), batch_size=4)):
        with pytest.raises(IndexValueError, match="out of range"):
            list(loader)
    with pytest.raises(IndexError):
        list(tdata.DataLoader(tds, sampler=tdata.SequentialSampler(range(8)), batch_size=4))
    with pytest.raises(TypeError):
        data.DataLoader(x, y, sampler=3)
    with pytest.raises(TypeError):
        data.DataLoader(x, y, worker_init_fn=3)
    with pytest.raises(TypeError):
        data.RandomSampler(range(3), generator="seed")


# --------------------------------------------------------- PyTorch code as ported
def test_torch_positional_order_after_shuffle_reaches_sampler_batch_sampler_workers():
    # DataLoader(dataset, batch_size, shuffle, sampler, batch_sampler, num_workers):
    # the sampler used to land in fastnn's shuffle slot and shuffle instead
    x, y = arrays(6)
    ds = data.TensorDataset(x, y)
    tds = tdata.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    for args in ((2, False, [5, 4, 3]), (1, False, None, [[1, 0], [2]]),
                 (4, False, [0, 1, 2], None, 0), (3, False, None, None, 2)):
        ours, theirs = data.DataLoader(ds, *args), tdata.DataLoader(tds, *args)
        assert len(ours) == len(theirs)
        assert_same_batches(list(ours), list(theirs))
        assert ours.num_workers == theirs.num_workers
    shuffled = data.DataLoader(ds, 2, True, seed=1, drop_last=True)   # fastnn's keywords
    assert shuffled.shuffle and shuffled.drop_last and len(shuffled) == 3
    with pytest.raises(TypeError, match="sampler twice"):
        data.DataLoader(ds, 2, False, [1], sampler=[1])
    with pytest.raises(ValueError, match="mutually exclusive with shuffle"):
        data.DataLoader(ds, 2, True, [1])
    with pytest.raises(TypeError, match="batch_size twice"):
        data.DataLoader(ds, 2, batch_size=None)


def test_torch_multiprocessing_arguments_are_accepted_and_kept():
    x, y = arrays(10)
    ds = data.TensorDataset(x, y)
    loader = data.DataLoader(ds, batch_size=4, shuffle=True, num_workers=4,
                             persistent_workers=True, pin_memory=True, timeout=30,
                             prefetch_factor=4, multiprocessing_context="spawn",
                             pin_memory_device="cuda", in_order=False, drop_last=True)
    assert len(loader) == 2 and sum(len(b) for _, b in loader) == 8
    assert (loader.num_workers, loader.prefetch_factor, loader.timeout) == (4, 4, 30)
    assert loader.persistent_workers and not loader.in_order
    assert loader.multiprocessing_context.get_start_method() == "spawn"
    assert data.DataLoader(ds, num_workers=2).prefetch_factor == 2     # PyTorch's default
    assert data.DataLoader(ds).prefetch_factor is None
    assert data.DataLoader(ds, batch_size=2, sampler=[1]).sampler == [1]
    # the batches are planned when built: changing how is an error, as PyTorch's
    theirs = tdata.DataLoader(tdata.TensorDataset(torch.zeros(3)))
    for name in ("batch_size", "sampler", "batch_sampler", "drop_last", "shuffle"):
        with pytest.raises(ValueError, match=f"{name} attribute should not be set"):
            setattr(loader, name, 2)
        if name != "shuffle":                          # (PyTorch keeps no .shuffle)
            with pytest.raises(ValueError, match=f"{name} attribute should not be set"):
                setattr(theirs, name, 2)
    loader.collate_fn = None      # others may change
    assert len(list(loader)) == 2


@pytest.mark.parametrize("persistent", [False, True])
def test_worker_init_fn_runs_in_this_process_as_worker_zero(persistent):
    x, y = arrays(6)
    calls = []
    loader = data.DataLoader(x, y, batch_size=4, num_workers=3, persistent_workers=persistent,
                             worker_init_fn=calls.append)
    assert calls == []                      # not when built
    for _ in range(3):
        for _ in loader:
            assert calls                    # before the first batch
    assert calls == ([0] if persistent else [0, 0, 0])
    data.DataLoader(x, y, worker_init_fn=calls.append)   # no workers: never called
    list(data.DataLoader(x, y, worker_init_fn=calls.append))
    assert calls == ([0] if persistent else [0, 0, 0])


class Recording(data.Dataset):
    """A dataset whose __getitem__ records get_worker_info() (None: the main process)."""

    def __init__(self, n):
        self.n, self.seen = n, []

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        self.seen.append(data.get_worker_info())
        return np.float32(i)


def test_get_worker_info_is_none_outside_worker_init_fn_and_the_worker_inside():
    assert data.get_worker_info() is None and tdata.get_worker_info() is None
    ds, infos = Recording(5), []
    loader = data.DataLoader(ds, batch_size=2, num_workers=2,
                             worker_init_fn=lambda i: infos.append((i, data.get_worker_info())))
    assert len(list(loader)) == 3 and data.get_worker_info() is None
    assert len(ds.seen) == 5 and all(v is None for v in ds.seen)   # __getitem__: None
    [(wid, info)] = infos
    assert isinstance(info, data.WorkerInfo) and wid == info.id == 0
    assert info.num_workers == 1 and info.dataset is loader.dataset is ds
    assert isinstance(info.seed, int) and 0 <= info.seed < 2**63
    # a worker_init_fn that raises leaves no WorkerInfo behind
    boom = data.DataLoader(ds, batch_size=2, num_workers=1,
                           worker_init_fn=lambda i: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        list(boom)
    assert data.get_worker_info() is None
    # the array form: the dataset is the loader's TensorDataset
    x, y = arrays(4)
    seen = []
    loader = data.DataLoader(x, y, num_workers=1, worker_init_fn=lambda i: seen.append(
        data.get_worker_info().dataset))
    list(loader)
    assert seen == [loader.dataset] and isinstance(seen[0], data.TensorDataset)


def test_worker_info_attributes_are_read_only_as_pytorchs():
    import dataclasses
    ours = data.WorkerInfo(id=0, num_workers=1, seed=7, dataset=None)
    from torch.utils.data._utils.worker import WorkerInfo
    theirs = WorkerInfo(id=0, num_workers=1, seed=7, dataset=None)
    for info in (ours, theirs):
        for name in ("id", "num_workers", "seed", "dataset"):
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(info, name, 1)
            with pytest.raises(AttributeError):
                delattr(info, name)
        assert (info.id, info.num_workers, info.seed, info.dataset) == (0, 1, 7, None)


@pytest.mark.parametrize("seed", [None, 5, "generator"])
def test_worker_seed_repeats_and_leaves_shuffle_and_generator_alone(seed):
    def run(with_init):
        fastnn.manual_seed(3)
        rng = np.random.default_rng(11) if seed == "generator" else seed
        seeds = []
        init = (lambda i: seeds.append(data.get_worker_info().seed)) if with_init else None
        loader = data.DataLoader(np.arange(10), batch_size=10, shuffle=True, seed=rng,
                                 num_workers=2, worker_init_fn=init)
        orders = [next(iter(loader)).tolist() for _ in range(3)]
        return seeds, orders, fastnn.random.draw_seed()

    seeds, orders, after = run(True)
    assert len(seeds) == 3 and len(set(seeds)) == 3          # a new seed each pass
    assert run(True) == (seeds, orders, after)               # repeats with the same seed
    assert run(False) == ([], orders, after)                 # no draw of its own
    np.random.seed(seeds[0] % 2**32)                         # the PyTorch idiom works


def test_worker_seed_follows_the_loader_seed_not_the_global_generator():
    seeds = []
    init = lambda i: seeds.append(data.get_worker_info().seed)   # noqa: E731
    for s, g in ((1, 0), (1, 9), (2, 0)):
        fastnn.manual_seed(g)
        list(data.DataLoader(np.arange(4), shuffle=True, seed=s, num_workers=1,
                             worker_init_fn=init))
    assert seeds[0] == seeds[1] != seeds[2]
    seeds.clear()
    for g in (4, 4, 5):                                       # no seed: fastnn's generator
        fastnn.manual_seed(g)
        list(data.DataLoader(np.arange(4), num_workers=1, worker_init_fn=init))
    assert seeds[0] == seeds[1] != seeds[2]


_TAKE_A_GENERATOR = {
    "random_split": lambda g: data.random_split(list(range(6)), [3, 3], generator=g),
    "DataLoader": lambda g: data.DataLoader(list(range(6)), shuffle=True, generator=g),
    "RandomSampler": lambda g: data.RandomSampler(list(range(6)), generator=g),
    "SubsetRandomSampler": lambda g: data.SubsetRandomSampler([0, 2], generator=g),
    "WeightedRandomSampler": lambda g: data.WeightedRandomSampler([1.0, 2.0], 3, generator=g),
}


@pytest.mark.parametrize("where", sorted(_TAKE_A_GENERATOR))
def test_a_torch_generator_is_refused_saying_what_fastnn_takes(where):
    """A torch.Generator (PyTorch's idiom generator=torch.Generator().manual_seed(0)) was
    refused as 'must be None, an int or a numpy.random.Generator, got Generator', which
    read as NumPy's Generator refused. fastnn draws with NumPy and cannot reproduce
    PyTorch's order, so it stays refused, saying so and what to pass instead; an int seed
    and a NumPy Generator are taken, and any other type is named in full."""
    call = _TAKE_A_GENERATOR[where]
    with pytest.raises(TypeError, match=rf"^{where}: .*numpy\.random\.Generator, got a "
                                        r"torch\.Generator: fastnn draws with NumPy.*"
                                        r"int seed .*np\.random\.default_rng\(seed\)"):
        call(torch.Generator().manual_seed(0))
    with pytest.raises(TypeError, match=r"got numpy\.random\.mtrand\.RandomState$"):
        call(np.random.RandomState(0))
    call(0)
    call(np.random.default_rng(0))


@pytest.mark.parametrize("where", sorted(_TAKE_A_GENERATOR))
@pytest.mark.parametrize("bad, error", [(-1, ValueError), ("g", TypeError)])
def test_a_bad_generator_is_named_generator_by_every_taker(where, bad, error):
    """generator=-1 reached NumPy's bare 'expected non-negative integer' in random_split,
    and DataLoader named its generator= 'seed' ('seed must be a non-negative int') or
    'seed (or generator)': each taker now names generator and refuses a negative seed
    with one message (fastnn.manual_seed refuses one too; PyTorch's wraps it mod 2**64)."""
    with pytest.raises(error, match=rf"^{where}: generator must be None, an? "
                                    rf"(non-negative )?int seed or a numpy\.random\.Generator, "
                                    rf"got "):
        _TAKE_A_GENERATOR[where](bad)
