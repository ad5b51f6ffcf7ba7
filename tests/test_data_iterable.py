"""DataLoader over an IterableDataset (and ChainDataset), compared with PyTorch's
torch.utils.data on the same datasets: batches, their order across workers, drop_last,
len, collate_fn, worker_init_fn and get_worker_info, errors."""
import warnings

import numpy as np
import pytest

import fastnn.data as fd
from conftest import torch_to_numpy

torch = pytest.importorskip("torch")  # (after fastnn: see fastnn's OpenMP warning)
tud = torch.utils.data

# (PyTorch's advice on more worker processes than CPUs, for its 3-worker loaders here)
pytestmark = pytest.mark.filterwarnings("ignore:This DataLoader will create")


class Source:
    """Items ``(array([i, -i]) float32, i)`` for i in [start, end); with ``split``, the
    worker k of n reads the i with i % n == k (its share, as PyTorch's docs show);
    ``fail_at``: the item that raises a ValueError; ``uneven``: worker k reads
    ``uneven[k]`` items of its own (k * 100 + j)."""

    def __init__(self, end, split=True, fail_at=None, uneven=None, start=0, dicts=False):
        self.start, self.end, self.split, self.fail_at = start, end, split, fail_at
        self.uneven, self.dicts = uneven, dicts

    def _items(self, info):
        if self.uneven is not None:
            ids = [info.id * 100 + j for j in range(self.uneven[info.id])]
        elif info is None or not self.split:
            ids = range(self.start, self.end)
        else:
            ids = range(self.start + info.id, self.end, info.num_workers)
        for i in ids:
            if i == self.fail_at:
                raise ValueError(f"item {i} is broken")
            x = np.array([i, -i], dtype=np.float32)
            yield {"x": x, "label": i} if self.dicts else (x, i)


class FnSource(Source, fd.IterableDataset):
    def __iter__(self):
        return self._items(fd.get_worker_info())


class TorchSource(Source, tud.IterableDataset):
    def __iter__(self):
        return self._items(tud.get_worker_info())


class FnSized(FnSource):
    def __len__(self):
        return self.end - self.start


class TorchSized(TorchSource):
    def __len__(self):
        return self.end - self.start


def assert_same(got, want):
    """Equal values, container types, array dtypes and shapes (want: PyTorch's, through
    torch_to_numpy)."""
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray), (got, want)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
    elif isinstance(want, dict):
        assert type(got) is dict and list(got) == list(want)
        for k in want:
            assert_same(got[k], want[k])
    elif isinstance(want, (list, tuple)):
        assert type(got) is type(want) and len(got) == len(want), (got, want)
        for g, w in zip(got, want):
            assert_same(g, w)
    else:
        assert type(got) is type(want) and got == want, (got, want)


def both(fn_ds, torch_ds, **kw):
    """The batches of fastnn's and PyTorch's loaders (PyTorch's through torch_to_numpy)."""
    got = list(fd.DataLoader(fn_ds, **kw))
    want = [torch_to_numpy(b) for b in tud.DataLoader(torch_ds, **kw)]
    return got, want


def labels(batches):
    return [int(b) if np.ndim(b) == 0 else b.tolist() for _, b in batches]


@pytest.mark.parametrize("n", [0, 1, 7, 12])
@pytest.mark.parametrize("batch_size, drop_last", [(1, False), (3, False), (3, True),
                                                   (5, True), (20, False), (20, True),
                                                   (None, False)])
@pytest.mark.parametrize("dicts", [False, True])
def test_single_process_batches_match_pytorch(n, batch_size, drop_last, dicts):
    got, want = both(FnSource(n, dicts=dicts), TorchSource(n, dicts=dicts),
                     batch_size=batch_size, drop_last=drop_last)
    assert_same(got, want)
    if batch_size is not None and not dicts and got:
        assert labels(got)[0] == list(range(min(batch_size, n)))   # the dataset's order


def test_default_batch_size_is_one_and_positional_batch_size():
    got, want = both(FnSource(4), TorchSource(4))
    assert_same(got, want)
    assert len(got) == 4 and got[0][1].shape == (1,)
    assert_same(list(fd.DataLoader(FnSource(5), 2, False)),
                [torch_to_numpy(b) for b in tud.DataLoader(TorchSource(5), 2, False)])


@pytest.mark.parametrize("num_workers, batch_size, drop_last, split", [
    (2, 3, False, True), (3, 3, True, True), (2, 2, False, False), (2, None, False, True),
    (3, 4, False, True)])
def test_workers_read_their_share_in_turn_as_pytorch(num_workers, batch_size, drop_last,
                                                     split):
    # each worker iterates its own copy; get_worker_info() splits the work (or not:
    # every worker then reads everything, duplicated as in PyTorch); batches alternate
    got, want = both(FnSource(11, split=split), TorchSource(11, split=split),
                     batch_size=batch_size, drop_last=drop_last, num_workers=num_workers)
    assert_same(got, want)


@pytest.mark.parametrize("batch_size", [1, 2])
def test_a_worker_that_ends_first_drops_out_of_the_turns_as_pytorch(batch_size):
    got, want = both(FnSource(0, uneven=[5, 1, 3]), TorchSource(0, uneven=[5, 1, 3]),
                     batch_size=batch_size, num_workers=3)
    assert_same(got, want)
    if batch_size == 2:
        assert labels(got) == [[0, 1], [100], [200, 201], [2, 3], [202], [4]]


def init_share(worker_id):
    """PyTorch's documented worker_init_fn: cut the worker's dataset copy to its share."""
    info = fd.get_worker_info() or tud.get_worker_info()
    ds = info.dataset
    per = -(-(ds.end - ds.start) // info.num_workers)
    ds.start = ds.start + worker_id * per
    ds.end = min(ds.start + per, ds.end)


@pytest.mark.parametrize("persistent", [False, True])
def test_worker_init_fn_cuts_each_workers_copy_as_pytorch(persistent):
    fn_ds, torch_ds = FnSource(17, split=False, start=3), TorchSource(17, split=False, start=3)
    kw = dict(batch_size=2, num_workers=3, worker_init_fn=init_share,
              persistent_workers=persistent)
    fn_loader, torch_loader = fd.DataLoader(fn_ds, **kw), tud.DataLoader(torch_ds, **kw)
    for _ in range(2):   # a second pass: fresh copies, or the persistent workers' own
        got, want = list(fn_loader), [torch_to_numpy(b) for b in torch_loader]
        assert_same(got, want)
        assert sorted(sum(labels(got), [])) == list(range(3, 17))   # each item once
    assert (fn_ds.start, fn_ds.end) == (3, 17)   # the workers cut copies, not the dataset


def test_worker_info_while_a_worker_reads_and_none_outside():
    seen = []

    class Spy(fd.IterableDataset):
        def __iter__(self):
            info = fd.get_worker_info()
            seen.append((info.id, info.num_workers, info.seed, info.dataset is self,
                         info.dataset is loader.dataset))
            yield info.id
            seen.append(fd.get_worker_info().id)   # (and during each next)

    loader = fd.DataLoader(Spy(), batch_size=None, num_workers=3, generator=5)
    assert fd.get_worker_info() is None
    assert list(loader) == [0, 1, 2]
    assert fd.get_worker_info() is None
    infos, after = seen[:3], seen[3:]
    assert [i[:2] for i in infos] == [(0, 3), (1, 3), (2, 3)] and after == [0, 1, 2]
    assert all(i[3] and not i[4] for i in infos)   # each reads its own copy
    seeds = [i[2] for i in infos]
    assert [s - seeds[0] for s in seeds] == [0, 1, 2]   # base_seed + id, as PyTorch's
    seen.clear()
    list(fd.DataLoader(Spy(), batch_size=None, num_workers=3, generator=5))
    assert [i[2] for i in seen[:3]] == seeds   # the same generator seed: the same seeds
    with pytest.raises(AttributeError):   # num_workers=0: no worker, None, as PyTorch's
        list(fd.DataLoader(Spy(), batch_size=None))


def test_worker_init_fn_called_per_worker_and_once_when_persistent():
    calls = []

    def init(worker_id):
        calls.append((worker_id, fd.get_worker_info().num_workers))

    for persistent, expected in ((False, 2 * [(0, 2), (1, 2)]), (True, [(0, 2), (1, 2)])):
        calls.clear()
        loader = fd.DataLoader(FnSource(6), batch_size=2, num_workers=2,
                               worker_init_fn=init, persistent_workers=persistent)
        assert labels(list(loader)) == labels(list(loader)) == [[0, 2], [1, 3], [4], [5]]
        assert calls == expected


@pytest.mark.parametrize("n, batch_size, drop_last", [(10, 3, False), (10, 3, True),
                                                      (9, 3, False), (2, 5, True),
                                                      (0, 4, False), (7, None, False)])
def test_len_from_the_datasets_len_as_pytorch(n, batch_size, drop_last):
    kw = dict(batch_size=batch_size, drop_last=drop_last)
    fn_loader = fd.DataLoader(FnSized(n), **kw)
    assert len(fn_loader) == len(tud.DataLoader(TorchSized(n), **kw))
    assert len(fn_loader) == len(list(fn_loader))
    with pytest.raises(TypeError):   # (PyTorch's iterator: its sampler has no len)
        len(iter(tud.DataLoader(TorchSized(n), **kw)))
    with pytest.raises(TypeError):
        len(iter(fn_loader))


def test_len_without_a_datasets_len_is_a_type_error_as_pytorch():
    with pytest.raises(TypeError, match="has no len"):
        len(tud.DataLoader(TorchSource(4), batch_size=2))
    with pytest.raises(TypeError, match="has no len"):
        len(fd.DataLoader(FnSource(4), batch_size=2))


def test_more_batches_than_the_reported_len_warns_as_pytorch():
    def warned(module, ds):
        loader = module.DataLoader(ds, batch_size=1)
        assert len(loader) == 3
        ds.end = 5
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert len(list(loader)) == 5
        return [str(w.message) for w in caught if "Length of IterableDataset" in str(w.message)]
    assert len(warned(fd, FnSized(3))) == len(warned(tud, TorchSized(3))) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no len read before the pass: no warning
        list(fd.DataLoader(FnSized(3), batch_size=1))


@pytest.mark.parametrize("kw, option", [(dict(shuffle=True), "shuffle=True"),
                                        (dict(sampler=[0, 1]), "sampler=[0, 1]"),
                                        (dict(batch_sampler=[[0]]), "batch_sampler=[[0]]")])
def test_shuffle_sampler_batch_sampler_refused_as_pytorch(kw, option):
    with pytest.raises(ValueError) as want:
        tud.DataLoader(TorchSource(3), **kw)
    with pytest.raises(ValueError) as got:
        fd.DataLoader(FnSource(3), **kw)
    assert str(got.value) == str(want.value)
    assert "expected unspecified" in str(got.value) and option in str(got.value)
    with pytest.raises(ValueError, match="unspecified shuffle"):   # positional shuffle
        fd.DataLoader(FnSource(3), 2, True)
    assert len(list(fd.DataLoader(FnSource(3), shuffle=False))) == 3


@pytest.mark.parametrize("batch_size, num_workers", [(3, 0), (None, 0), (2, 2)])
def test_collate_fn_applied_as_pytorch(batch_size, num_workers):
    def collate(batch):
        if isinstance(batch, tuple):   # one item (batch_size=None)
            return ("one", int(batch[1]))
        return ("sum", sum(int(i) for _, i in batch), len(batch))

    got, want = both(FnSource(8), TorchSource(8), batch_size=batch_size,
                     num_workers=num_workers, collate_fn=collate)
    assert got == want


@pytest.mark.parametrize("num_workers", [0, 2])
def test_an_error_inside_iteration_propagates_after_the_batches_before_it(num_workers):
    kw = dict(batch_size=2, num_workers=num_workers)
    want = []
    batches = iter(tud.DataLoader(TorchSource(10, fail_at=5), **kw))
    try:
        with pytest.raises(ValueError, match="item 5 is broken"):
            for batch in batches:
                want.append(torch_to_numpy(batch))
    finally:   # (its worker processes, else left to the interpreter's exit: 10 s there)
        if num_workers:
            batches._shutdown_workers()
    got = []
    with pytest.raises(ValueError, match="item 5 is broken"):
        for batch in fd.DataLoader(FnSource(10, fail_at=5), **kw):
            got.append(batch)
    assert_same(got, want)
    assert len(got) == (2 if num_workers == 0 else 3)


def test_a_worker_init_fn_error_is_raised_when_that_worker_is_asked():
    def init(worker_id):
        if worker_id == 1:
            raise RuntimeError("worker 1 cannot start")

    kw = dict(batch_size=2, num_workers=2, worker_init_fn=init)
    for module, ds in ((tud, TorchSource(8)), (fd, FnSource(8))):
        batches, loader = [], iter(module.DataLoader(ds, **kw))
        try:
            with pytest.raises(RuntimeError, match="worker 1 cannot start"):
                for batch in loader:
                    batches.append(torch_to_numpy(batch))
        finally:   # (PyTorch's worker processes now, not at the interpreter's exit)
            if module is tud:
                loader._shutdown_workers()
        assert labels(batches) == [[0, 2]]   # worker 0's first batch, then worker 1's turn


def test_chain_dataset_and_add_as_pytorch():
    fn_chain = FnSized(3) + FnSource(4, start=1) + FnSized(2)
    torch_chain = TorchSized(3) + TorchSource(4, start=1) + TorchSized(2)
    assert type(fn_chain) is fd.ChainDataset and type(torch_chain) is tud.ChainDataset
    assert_same(list(fn_chain), list(torch_chain))
    got, want = both(fn_chain, torch_chain, batch_size=4)
    assert_same(got, want)
    sized = fd.ChainDataset([FnSized(3), FnSized(5)])
    assert len(sized) == len(tud.ChainDataset([TorchSized(3), TorchSized(5)])) == 8
    with pytest.raises(TypeError):
        len(fn_chain)   # (a dataset in it has no len)
    with pytest.raises(AssertionError, match="ChainDataset only supports IterableDataset"):
        list(fd.ChainDataset([FnSource(2), fd.TensorDataset(np.zeros(2))]))
    got, want = both(fd.ChainDataset([FnSource(5), FnSource(3)]),
                     tud.ChainDataset([TorchSource(5), TorchSource(3)]),
                     batch_size=2, num_workers=2)
    assert_same(got, want)


def test_concat_dataset_refuses_an_iterable_dataset_as_pytorch():
    tensors = fd.TensorDataset(np.zeros(3))
    assert type(tensors + fd.TensorDataset(np.ones(2))) is fd.ConcatDataset
    with pytest.raises(AssertionError, match="ConcatDataset does not support IterableDataset"):
        tensors + FnSource(2)
    with pytest.raises(AssertionError, match="ConcatDataset does not support IterableDataset"):
        tud.TensorDataset(torch.zeros(3)) + TorchSource(2)


def test_iterable_dataset_without_iter_cannot_be_made_as_pytorch():
    with pytest.raises(TypeError):
        tud.IterableDataset()
    with pytest.raises(TypeError):
        fd.IterableDataset()

    class NoIter(fd.IterableDataset):
        pass

    with pytest.raises(TypeError):
        NoIter()


class _ShuffledShards:
    """Shuffles its own file list in place with the epoch's seed (the same in every
    worker, so one permutation), then yields worker k's share of it: the common sharding
    pattern that needs each worker's copy of the list to be its own."""

    def __init__(self, n, epoch=0):
        self.files, self.epoch = list(range(n)), epoch

    def _shuffled_share(self, info):
        import random
        random.Random(self.epoch).shuffle(self.files)
        k, n = (info.id, info.num_workers) if info is not None else (0, 1)
        yield from self.files[k::n]


class FnShuffledShards(_ShuffledShards, fd.IterableDataset):
    def __iter__(self):
        return self._shuffled_share(fd.get_worker_info())


class TorchShuffledShards(_ShuffledShards, tud.IterableDataset):
    def __iter__(self):
        return self._shuffled_share(tud.get_worker_info())


@pytest.mark.parametrize("persistent", [False, True])
def test_each_worker_changes_its_own_copy_of_the_dataset_as_pytorch(persistent):
    # a worker's in-place changes are its own (a worker process's copy): with shallow
    # copies the workers shuffled one shared list, some items came twice and others
    # never, and the caller's dataset ended the pass reordered
    kw = dict(batch_size=2, num_workers=2, persistent_workers=persistent)
    fn_ds = FnShuffledShards(12)
    fn_loader = fd.DataLoader(fn_ds, **kw)
    torch_loader = tud.DataLoader(TorchShuffledShards(12), **kw)
    for _ in range(2):
        got, want = list(fn_loader), [torch_to_numpy(b) for b in torch_loader]
        assert_same(got, want)
        assert sorted(np.concatenate(got).tolist()) == list(range(12))
    assert fn_ds.files == list(range(12))


def test_a_dataset_that_cannot_be_deep_copied_is_still_read_by_workers(tmp_path):
    # (an open file cannot be deep-copied: such a dataset's workers get shallow copies)
    path = tmp_path / "lines.txt"
    path.write_text("".join(f"{i}\n" for i in range(6)))

    class Lines(fd.IterableDataset):
        def __init__(self):
            self.file = open(path)

        def __iter__(self):
            info = fd.get_worker_info()
            self.file.seek(0)
            lines = [int(v) for v in self.file.read().split()]
            return iter(lines[info.id::info.num_workers])

    ds = Lines()
    try:
        got = list(fd.DataLoader(ds, batch_size=None, num_workers=2))
    finally:
        ds.file.close()
    assert [int(v) for v in got] == [0, 1, 2, 3, 4, 5]


def test_worker_copies_share_read_only_arrays_and_shallow_copy_what_cannot_be_copied():
    # a read-only array (an np.memmap opened 'r') is shared, as a forked worker shares
    # its pages (a deep copy read a memmap's whole file into memory each pass); a
    # dataset whose members refuse deepcopy with any exception (a multiprocessing
    # Queue's RuntimeError) still gets the shallow copy
    import multiprocessing

    from fastnn.data.streams import worker_copy
    frozen = np.arange(10.0)
    frozen.flags.writeable = False

    class Holder(fd.IterableDataset):
        def __init__(self):
            self.data = {"frozen": frozen, "open": np.arange(3.0)}

        def __iter__(self):
            return iter(())

    copied = worker_copy(Holder())
    assert copied.data["frozen"] is frozen
    assert not np.shares_memory(copied.data["open"], Holder().data["open"])

    class Queued(fd.IterableDataset):
        def __init__(self):
            self.queue, self.items = multiprocessing.Queue(), [1, 2, 3]

        def __iter__(self):
            info = fd.get_worker_info()
            return iter(self.items[info.id::info.num_workers])

    ds = Queued()
    assert sorted(int(v) for v in fd.DataLoader(ds, batch_size=None, num_workers=2)) == [1, 2, 3]
