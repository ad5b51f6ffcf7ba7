"""One layer called by two threads at once under no_grad (an inference pool sharing a
model, as PyTorch allows): a forward that kept what it saved in an attribute and read it
back later in the same call read None once the other thread's no_grad forward had dropped
it (forget_forward), a TypeError or ValueError, or read the other thread's arrays (a max
pool's return_indices gave the other call's indices). The interleaving is made
deterministic: the other thread's whole forward runs right after this thread's forward
sets the attribute."""
import threading

import numpy as np
import pytest

import fastnn
from fastnn import nn

BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]


def _with_other_call_after(monkeypatch, attr, other):
    """Run other() in a second thread, to its end, right after this thread first sets
    attr on a module (what a thread switch there does)."""
    original = nn.Module.__setattr__
    main, fired = threading.get_ident(), []

    def setattr_then_switch(self, name, value):
        original(self, name, value)
        if name == attr and not fired and threading.get_ident() == main:
            fired.append(name)
            worker = threading.Thread(target=other)
            worker.start()
            worker.join()

    monkeypatch.setattr(nn.Module, "__setattr__", setattr_then_switch)
    return fired


CASES = [
    # (layer, input shape, attribute set mid-forward, training)
    (lambda: nn.Conv2d(4, 4, 3, dilation=2, stride=2), (2, 4, 9, 9), "_x", False),
    (lambda: nn.Conv2d(4, 4, 3, groups=2), (2, 4, 8, 8), "_x", False),
    (lambda: nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), (2, 4, 8, 8), "_x",
     False),
    (lambda: nn.Dropout2d(0.5), (2, 4, 5, 5), "_mask", True),
    (lambda: nn.Dropout1d(1.0), (2, 4, 5), "_mask", True),
    (lambda: nn.AlphaDropout(0.5), (4, 16), "_gain", True),
    (lambda: nn.RReLU(), (4, 16), "_slope", True),
    (lambda: nn.FeatureAlphaDropout(0.5), (4, 3, 5), "_gain", True),
    (lambda: nn.InstanceNorm2d(4, eps=0.0), (2, 4, 5, 5), "_ctx", False),
    (lambda: nn.InstanceNorm2d(4, affine=True, track_running_stats=True), (2, 4, 5, 5),
     "_ctx", True),
    (lambda: nn.MaxPool2d(2, return_indices=True), (2, 3, 6, 6), "_indices", False),
    (lambda: nn.MaxPool1d(2, return_indices=True), (2, 3, 6), "_indices", False),
    (lambda: nn.AdaptiveMaxPool2d(3, return_indices=True), (2, 3, 7, 7), "_indices", False),
    (lambda: nn.AdaptiveMaxPool2d((3, 4), return_indices=True), (2, 3, 7, 9), "_indices",
     False),
    (lambda: nn.MaxPool3d(2, return_indices=True), (2, 3, 4, 4, 4), "_indices", False),
    (lambda: nn.AdaptiveMaxPool3d(2, return_indices=True), (2, 3, 5, 5, 5), "_indices",
     False),
    (lambda: nn.AdaptiveMaxPool3d((0, 2, 2), return_indices=True), (2, 3, 5, 5, 5),
     "_indices", False),
    (lambda: nn.FractionalMaxPool2d(2, output_size=3, return_indices=True), (2, 3, 8, 8),
     "_indices", False),
]


def _arrays(out):
    return list(out) if isinstance(out, tuple) else [out]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("make,shape,attr,training", CASES)
def test_another_threads_no_grad_forward_mid_call_changes_nothing(monkeypatch, backend, make,
                                                                  shape, attr, training):
    rng = np.random.default_rng(0)
    x, x_other = (rng.standard_normal(shape).astype(np.float32) for _ in range(2))
    with fastnn.use_backend(backend):
        layer = make().train(training)
        with fastnn.no_grad():   # each call on its own, for the values expected
            expected = (fastnn.manual_seed(3), layer(x))[1]
            expected_other = (fastnn.manual_seed(4), layer(x_other))[1]
        seen = {}

        def other():   # (each thread draws from a generator of its own)
            try:
                with fastnn.use_backend(backend), fastnn.no_grad():
                    fastnn.manual_seed(4)
                    seen["out"] = layer(x_other)
            except Exception as error:  # (reported by the assertion below)
                seen["error"] = error

        fastnn.manual_seed(3)
        fired = _with_other_call_after(monkeypatch, attr, other)
        with fastnn.no_grad():
            out = layer(x)
        monkeypatch.undo()
    assert fired == [attr]
    assert "error" not in seen, repr(seen.get("error"))
    for got, want in zip(_arrays(out) + _arrays(seen["out"]),
                         _arrays(expected) + _arrays(expected_other)):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(RuntimeError, match="gradients disabled"):
        layer.backward(np.ones_like(_arrays(out)[0]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_return_indices_pool_run_by_a_sequential_leaves_no_indices_behind(backend):
    # (inside a Sequential only the output passes on: the thread's slot for the indices
    # forward returns stays empty, as the pool's own _indices under no_grad)
    from fastnn.nn import pooling
    x = np.random.default_rng(0).standard_normal((50, 3, 8, 8)).astype(np.float32)
    pool = nn.MaxPool2d(2, return_indices=True)
    model = nn.Sequential(pool, nn.Flatten())
    with fastnn.use_backend(backend), fastnn.no_grad():
        y = model(x)
        assert pooling._RETURNED.indices is None and pool._indices is None
        out, indices = pool(x)
    assert pooling._RETURNED.indices is None and pool._indices is None
    np.testing.assert_array_equal(y, out.reshape(50, -1))
    windows = x.reshape(50, 3, 4, 2, 4, 2).transpose(0, 1, 2, 4, 3, 5).reshape(50, 3, 4, 4, 4)
    np.testing.assert_array_equal(out, windows.max(axis=-1))
    np.testing.assert_array_equal(np.take_along_axis(x.reshape(50, 3, 64),
                                                     indices.reshape(50, 3, 16), 2),
                                  out.reshape(50, 3, 16))
