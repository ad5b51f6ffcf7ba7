"""fastnn's own buffers of 4 MB and more (optimizer flat buffers and state, layer buffers)
live in mappings of their own, 2 MB aligned and advised for huge pages
(fastnn/device.py): zeros where asked, writable, freed with the array, and smaller ones
still 64-byte aligned heap arrays."""
import gc
import weakref

import numpy as np
import pytest

from fastnn import device, nn, optim


@pytest.mark.skipif(not device._HUGE_PAGES, reason="Linux only")
def test_large_buffers_are_huge_page_aligned_zeros():
    a = device.Host.zeros((1024, 1100), np.float32)      # 4.3 MB
    assert a.ctypes.data % (2 << 20) == 0
    assert a.flags.writeable and a.flags.c_contiguous and a.shape == (1024, 1100)
    assert not a.any()
    a[...] = 3.0
    assert float(a.sum()) == 3.0 * a.size
    b = device.Host.empty(device._HUGE_MIN // 8, np.float64)
    assert b.ctypes.data % (2 << 20) == 0 and b.dtype == np.float64


def test_small_buffers_stay_64_byte_aligned():
    for n in (1, 100, 1000003):
        a = device.Host.empty(n, np.float32)
        assert a.ctypes.data % 64 == 0 and a.shape == (n,)
        assert not device.Host.zeros(n, np.float64).any()


@pytest.mark.skipif(not device._HUGE_PAGES, reason="Linux only")
def test_mapping_is_released_with_the_array():
    a = device.Host.empty(8 << 20, np.uint8)
    region = a.base
    while not hasattr(region, "madvise") and getattr(region, "base", None) is not None:
        region = region.base
    ref = weakref.ref(region) if hasattr(region, "madvise") else None
    del a, region
    gc.collect()
    assert ref is None or ref() is None


def test_optimizer_trains_on_huge_page_flat_buffers():
    rng = np.random.default_rng(0)
    model = nn.Sequential(nn.Linear(1024, 1100), nn.ReLU(), nn.Linear(1100, 3))
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = rng.standard_normal((32, 1024)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    for _ in range(20):
        opt.zero_grad()
        losses.append(float(loss_fn(model(x), y)))
        model.backward(loss_fn.backward())
        opt.step()
    assert losses[-1] < 0.5 * losses[0]
    if device._HUGE_PAGES:
        # the flat buffers (data, grad, momentum: 4.5 MB each) start on 2 MB
        buckets = [b for group in opt._buckets for b in group]
        flats = [b.data for b in buckets] + [b.grad for b in buckets] + \
            [buf for b in buckets for buf in b.state.values()]
        assert len(flats) == 3
        assert all(f.ctypes.data % (2 << 20) == 0 for f in flats)
