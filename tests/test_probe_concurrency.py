"""Concurrency: fork after parallel kernels, Python threads and fastnn.set_num_threads.

GNU libgomp (the Cython kernels' OpenMP, numba's 'omp' layer) is not fork-safe: a child
forked after a 2-thread region used to hang (cython) or die of SIGTERM (numba) on its
first parallel kernel. Each fork here runs under a deadline and is killed past it.
"""
import multiprocessing
import os
import pickle
import select
import signal
import threading
import time

import numpy as np
import pytest

import fastnn
from fastnn import nn, ops, optim
from fastnn.models import MLP

from conftest import BACKENDS

COMPILED = [b for b in ("cython", "numba") if b in BACKENDS]
DEADLINE_S = 8.0
# Python 3.12+ warns on every fork of a process with threads (the kernels' pools): the
# hazard these tests are about
pytestmark = pytest.mark.filterwarnings(
    "ignore:This process .* is multi-threaded:DeprecationWarning")


@pytest.fixture
def two_threads():
    previous = fastnn.get_num_threads()
    fastnn.set_num_threads(2)
    yield
    fastnn.set_num_threads(previous)


def _work(seed=0):
    """Parallel-sized kernels (2**18 elements: above both backends' serial cut-off) and
    three training steps of a small MLP; returns what to compare."""
    rng = np.random.default_rng(seed)
    big = rng.standard_normal(1 << 18).astype(np.float32)
    x = rng.standard_normal((256, 128)).astype(np.float32)
    y = rng.integers(0, 10, 256)
    fastnn.manual_seed(seed)
    model = MLP(128, [256], 10, batchnorm=True)
    loss_fn, opt = nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = []
    for _ in range(3):
        losses.append(loss_fn.forward(model(x), y))
        opt.zero_grad()
        model.backward(loss_fn.backward())
        opt.step()
    return {"relu": ops.relu(big), "sigmoid": ops.sigmoid(big), "losses": np.array(losses),
            "params": [p.data.copy() for p in model.parameters()]}


def _in_forked_child(fn):
    """fn() in a child of os.fork(); its pickled result, or a failure naming a hang
    (killed after DEADLINE_S) or the signal that ended the child."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        status = 0
        try:
            os.close(read_fd)
            with os.fdopen(write_fd, "wb") as out:
                pickle.dump(fn(), out)
        except BaseException:
            status = 1
        os._exit(status)
    os.close(write_fd)
    deadline = time.monotonic() + DEADLINE_S
    chunks = []
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        while True:  # drain the pipe as the child writes (it blocks on a full pipe)
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail(f"the forked child hung (killed after {DEADLINE_S} s)")
            if select.select([pipe], [], [], min(left, 0.1))[0]:
                chunk = pipe.read(1 << 20)
                if not chunk:  # EOF: the child closed its end
                    break
                chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    payload = b"".join(chunks)
    if os.WIFSIGNALED(status):
        pytest.fail(f"the forked child died of signal {os.WTERMSIG(status)}")
    assert os.WEXITSTATUS(status) == 0 and payload, "the forked child failed"
    return pickle.loads(payload)


def _assert_same(got, want, exact):
    check = np.testing.assert_array_equal if exact else (
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5))
    check(got["relu"], want["relu"])
    check(got["losses"], want["losses"])
    for a, b in zip(got["params"], want["params"]):
        check(a, b)


@pytest.mark.parametrize("name", COMPILED)
def test_forked_child_runs_kernels_after_parallel_regions_in_the_parent(name, two_threads):
    with fastnn.use_backend(name):
        want = _work()  # the parent's OpenMP pool / numba's omp layer are now live
        got = _in_forked_child(_work)
        again = _work()  # and the parent still runs on its threads afterwards
    # not bit for bit: the child runs one thread, and its BLAS products may round
    # differently (OpenBLAS on AMD Zen splits the sums between threads; numba's serial
    # compiles reduce in another order)
    _assert_same(got, want, exact=False)
    _assert_same(again, want, exact=True)


def test_forked_child_runs_numba_after_cython_regions(two_threads):
    """The parent ran only OpenMP (cython) regions; numba runs in the child, whether its
    backend was loaded before the fork (the whole file) or only in the child (this test
    alone: the layer would start on the forked thread's broken libgomp pool)."""
    if len(COMPILED) < 2:
        pytest.skip("needs both compiled backends")
    with fastnn.use_backend("cython"):
        _work()

    def numba_in_child():
        with fastnn.use_backend("numba"):
            return _work()
    got = _in_forked_child(numba_in_child)
    with fastnn.use_backend("numba"):
        want = _work()
    _assert_same(got, want, exact=False)


def _train_mlp(name):
    with fastnn.use_backend(name):
        return _work(seed=1)


def test_multiprocessing_fork_pool_trains_after_the_parent_did(two_threads):
    want = {name: _train_mlp(name) for name in COMPILED}
    with multiprocessing.get_context("fork").Pool(2) as pool:
        got = pool.map_async(_train_mlp, COMPILED).get(timeout=DEADLINE_S)
    for name, result in zip(COMPILED, got):
        _assert_same(result, want[name], exact=False)   # (one thread there: see above)


def _in_thread(fn):
    out, errors = [], []

    def run():
        try:
            out.append(fn())
        except Exception as exc:  # surfaced below
            errors.append(exc)
    worker = threading.Thread(target=run)
    worker.start()
    worker.join(DEADLINE_S)
    assert not worker.is_alive(), "worker thread hung"
    assert not errors, errors
    return out[0]


@pytest.mark.skipif("cython" not in BACKENDS, reason="needs the cython backend")
def test_set_num_threads_reaches_cython_kernels_in_every_thread():
    """OpenMP's count is per thread: set_num_threads used to reach only the calling
    thread, and other threads' kernels kept OpenMP's default (all cores)."""
    from fastnn.kernels.cython import _openmp
    if not _openmp.openmp_enabled():
        pytest.skip("a build without OpenMP (FASTNN_NO_OPENMP=1) has no per-thread count")
    x = np.ones(1 << 16, np.float32)
    previous = fastnn.get_num_threads()
    def relu_then_count():
        with fastnn.use_backend("cython"):  # use_backend holds for its own thread only
            ops.relu(x)
        return _openmp.get_max_threads()
    try:
        fastnn.set_num_threads(1)
        assert _in_thread(relu_then_count) == 1
        _in_thread(lambda: fastnn.set_num_threads(2))  # set from another thread
        assert relu_then_count() == 2
        assert fastnn.get_num_threads() == 2
    finally:
        fastnn.set_num_threads(previous)


@pytest.mark.skipif("cython" not in BACKENDS, reason="needs the cython backend")
def test_cython_conv_in_a_worker_thread_gives_the_main_threads_bits():
    """conv2d_backward's grad_weight sums per-thread partials; with set_num_threads(1) a
    worker thread used to run it on every core and round differently (4.6e-5 here)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 8, 16, 16)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    grad_out = rng.standard_normal((32, 16, 16, 16)).astype(np.float32)

    def backward():
        gw, gb = np.zeros_like(w), np.zeros(16, np.float32)
        with fastnn.use_backend("cython"):  # use_backend holds for its own thread only
            gi = ops.conv2d_backward(grad_out, x, w, padding=(1, 1), grad_weight=gw,
                                     grad_bias=gb)
        return gw, gb, gi
    previous = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(1)
        main = backward()
        worker = _in_thread(backward)
    finally:
        fastnn.set_num_threads(previous)
    for a, b in zip(main, worker):
        np.testing.assert_array_equal(a, b)


def _blas_counts():
    from threadpoolctl import threadpool_info
    return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}


def test_set_num_threads_from_a_worker_thread_reaches_blas():
    """threadpoolctl lets only the first thread that limited OpenBLAS change it (others
    are silently ignored): set_num_threads from a worker thread used to leave BLAS at
    the main thread's count."""
    pytest.importorskip("threadpoolctl")
    import scipy.linalg  # noqa: F401  (loads SciPy's OpenBLAS too)
    previous = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(2)
        assert _blas_counts() == {2}
        _in_thread(lambda: fastnn.set_num_threads(1))
        assert _blas_counts() == {1}
        _in_thread(lambda: fastnn.set_num_threads(2))
        assert _blas_counts() == {2}
    finally:
        fastnn.set_num_threads(previous)


def test_set_num_threads_during_a_conv_call_in_another_thread_is_kept():
    """A conv call holds SciPy's OpenBLAS at one thread and restores the count it saved
    when it ends: a set_num_threads(1) made meanwhile used to be undone."""
    pytest.importorskip("threadpoolctl")
    from fastnn.kernels import blas_threads
    if not blas_threads.available():
        pytest.skip("SciPy's BLAS is not an OpenBLAS whose count can be set")
    get = blas_threads._get
    previous = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(2)
        with blas_threads.serial_blas():  # what a conv call in another thread does
            _in_thread(lambda: fastnn.set_num_threads(1))
            assert get() == 1
        assert get() == 1
        assert _blas_counts() == {1}
        fastnn.set_num_threads(2)
        with blas_threads.serial_blas():
            _in_thread(lambda: fastnn.set_num_threads(2))
            assert get() == 1  # the block stays serial
        assert get() == 2
    finally:
        fastnn.set_num_threads(previous)


class _BlockingLoss(nn.Loss):
    """A user loss whose forward waits, inside the loss's lock, until released."""

    def __init__(self):
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def forward(self, pred, target):
        self.entered.set()
        self.release.wait(30)
        return float(np.mean((pred - target) ** 2))


def _while_inside(hold, body):
    """body() while another thread is inside hold's context (entered before body runs);
    body's result."""
    entered, release = threading.Event(), threading.Event()

    def holder():
        with hold:
            entered.set()
            release.wait(30)

    worker = threading.Thread(target=holder)
    worker.start()
    try:
        assert entered.wait(10)
        return body()
    finally:
        release.set()
        worker.join()


def test_losses_take_their_own_lock_so_threads_and_forked_children_do_not_wait():
    # Every loss's forward and backward ran under one process-wide lock: losses of
    # models trained in separate threads took turns, and a child forked while another
    # thread was inside any loss waited for ever in its first loss, whatever its object
    # (3 of 3 forks hung). The lock is now the loss object's own.
    pred, target = np.ones((2, 2), np.float32), np.zeros((2, 2), np.float32)
    slow = _BlockingLoss()
    worker = threading.Thread(target=slow.forward, args=(pred, target))
    worker.start()
    try:
        assert slow.entered.wait(10)
        other = threading.Thread(target=lambda: nn.MSELoss()(pred, target))
        other.start()
        other.join(5)
        assert not other.is_alive(), "another loss object waited for this one's lock"
        assert _in_forked_child(lambda: nn.MSELoss()(pred, target)) == 1.0
    finally:
        slow.release.set()
        worker.join()


@pytest.mark.skipif(not __import__("fastnn.kernels.blas_threads",
                                   fromlist=["available"]).available(),
                    reason="SciPy's BLAS thread count cannot be set here")
def test_child_forked_during_a_serial_blas_block_gets_its_blas_threads_back(two_threads):
    # A child forked while another thread was inside serial_blas (a conv call) inherited
    # its lock held (set_num_threads in the child then waited for ever: 25 of 400 forks
    # during conv calls) and its depth (BLAS stuck at one thread). The child now starts
    # with a free lock, no open block and the thread count the block had saved.
    from fastnn.kernels import blas_threads

    def in_child():
        fastnn.set_num_threads(2)
        return blas_threads._depth, blas_threads._get()

    depth, count = _while_inside(blas_threads.serial_blas(),
                                 lambda: _in_forked_child(in_child))
    assert (depth, count) == (0, 2)
    assert blas_threads._depth == 0
