"""Reliability: threads, memory and determinism of whole training runs on every backend."""
import gc
import os
import threading

import numpy as np
import pytest

import fastnn
from fastnn import nn, optim
from fastnn.models import MLP

from conftest import BACKENDS


def _data(seed=0, n=512, features=64, classes=10):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, features)).astype(np.float32)
    y = rng.integers(0, classes, n)
    return x, y


def run_steps(model, loss_fn, opt, x, y, batch, count):
    """`count` training steps over (x, y) in consecutive batches, wrapping around."""
    for step in range(count):
        s = (step * batch) % len(x)
        loss_fn.forward(model(x[s:s + batch]), y[s:s + batch])
        opt.zero_grad()
        model.backward(loss_fn.backward())
        opt.step()


def growth_mb(model, loss_fn, opt, x, y, batch, warmup, count):
    """Resident memory growth over `count` steps after `warmup` steps (compilation,
    buffers, allocator pools)."""
    run_steps(model, loss_fn, opt, x, y, batch, warmup)
    before = _rss_mb()
    run_steps(model, loss_fn, opt, x, y, batch, count)
    return _rss_mb() - before


def train_mlp(backend, steps=40, seed=0, batch=64, batchnorm=True, dropout=0.1):
    """Train a small MLP (BatchNorm and dropout included) and return its final parameters."""
    with fastnn.use_backend(backend):
        fastnn.manual_seed(seed)
        x, y = _data(seed)
        model = MLP(64, [48, 32], 10, activation="leaky_relu", batchnorm=batchnorm,
                    dropout=dropout)
        loss_fn = nn.CrossEntropyLoss()
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
        run_steps(model, loss_fn, opt, x, y, batch, steps)
        return [p.data.copy() for p in model.parameters()]


@pytest.mark.parametrize("name", BACKENDS)
def test_same_seed_gives_bitwise_identical_parameters(name):
    first = train_mlp(name)
    second = train_mlp(name)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("batch", [64, 5])
@pytest.mark.parametrize("name", BACKENDS)
def test_two_models_in_two_threads_match_sequential_runs(name, batch, threads):
    """Bit for bit at one thread (README, "Threads"; a batch of 5 once gave numba's
    softmax-CE a gradient 1 ulp off where the two threads' allocations lay close); with
    two, the BLAS may split a product differently while the other thread uses it, so
    within rounding."""
    results = [None, None]
    errors = []

    def work(i, seed):
        try:
            results[i] = train_mlp(name, seed=seed, dropout=0.0, batch=batch)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    previous = fastnn.get_num_threads()
    fastnn.set_num_threads(threads)
    try:
        # dropout draws from the global generator, which two threads would share:
        # without it each run depends only on its own model and data
        expected = [train_mlp(name, seed=s, dropout=0.0, batch=batch) for s in (1, 2)]
        workers = [threading.Thread(target=work, args=(i, s)) for i, s in enumerate((1, 2))]
        for th in workers:
            th.start()
        for th in workers:
            th.join()
    finally:
        fastnn.set_num_threads(previous)
    assert not errors, errors
    for got, want in zip(results, expected):
        for a, b in zip(got, want):
            if threads == 1:
                np.testing.assert_array_equal(a, b)
            else:
                np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_set_num_threads_one_really_uses_one_thread():
    from threadpoolctl import threadpool_info
    previous = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(1)
        assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")
        if "numba" in BACKENDS:
            fastnn.backend.load("numba")
            import numba
            from numba import njit, prange

            @njit(parallel=True)
            def thread_ids(n):
                out = np.empty(n, np.int64)
                for i in prange(n):
                    out[i] = numba.get_thread_id()
                return out

            fastnn.set_num_threads(1)
            assert numba.get_num_threads() == 1
            assert len(set(thread_ids(10_000).tolist())) == 1
        if "cython" in BACKENDS:
            from fastnn.kernels.cython import _openmp
            assert _openmp.get_max_threads() == 1
    finally:
        fastnn.set_num_threads(previous)


@pytest.mark.parametrize("name", BACKENDS)
def test_results_with_one_and_two_threads_agree(name):
    previous = fastnn.get_num_threads()
    try:
        fastnn.set_num_threads(1)
        one = train_mlp(name, steps=20)
        fastnn.set_num_threads(2)
        two = train_mlp(name, steps=20)
    finally:
        fastnn.set_num_threads(previous)
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.fixture
def one_thread():
    """Memory tests run single-threaded: growth does not depend on the thread count, and on a
    busy machine two thread pools (OpenMP and BLAS) sharing two cores make 2,000 steps slow."""
    previous = fastnn.get_num_threads()
    fastnn.set_num_threads(1)
    yield
    fastnn.set_num_threads(previous)


def _rss_mb():
    import psutil
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


@pytest.mark.parametrize("name", BACKENDS)
def test_mlp_training_does_not_grow_memory(name, one_thread):
    x, y = _data(0, n=1024, features=784)
    with fastnn.use_backend(name):
        fastnn.manual_seed(0)
        model = MLP(784, [100], 10, batchnorm=True, dropout=0.1)
        loss_fn = nn.CrossEntropyLoss()
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        grown = growth_mb(model, loss_fn, opt, x, y, batch=64, warmup=200, count=2000)
    assert grown < 25, f"{name}: resident memory grew by {grown:.1f} MB over 2000 steps"


@pytest.mark.parametrize("name", BACKENDS)
def test_cnn_training_does_not_grow_memory(name, one_thread):
    models = pytest.importorskip("fastnn.models")
    if not hasattr(models, "SmallCNN"):
        pytest.fail("fastnn.models.SmallCNN is missing")
    rng = np.random.default_rng(0)
    x = rng.random((64, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    with fastnn.use_backend(name):
        fastnn.manual_seed(0)
        model = models.SmallCNN()
        loss_fn = nn.CrossEntropyLoss()
        opt = optim.Adam(model.parameters(), lr=1e-3)
        grown = growth_mb(model, loss_fn, opt, x, y, batch=8, warmup=20, count=200)
    assert grown < 25, f"{name}: resident memory grew by {grown:.1f} MB over 200 CNN steps"


# ------------------------------------------------------- OpenMP busy-wait vs BLAS
def _run_python(code, **env):
    import subprocess
    import sys
    full = {k: v for k, v in os.environ.items()
            if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY", "OPENBLAS_THREAD_TIMEOUT",
                         "GOTO_THREAD_TIMEOUT")}
    full.update(env)
    return subprocess.run([sys.executable, "-W", "always", "-c", code], env=full,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("torch_first", [False, True])
def test_openmp_spin_is_limited_or_the_user_is_told(torch_first):
    """Where SciPy's OpenBLAS runs on the OpenMP pool (fastnn/blas_pool.py), libgomp
    keeps its default busy-wait and nothing is said. Elsewhere `import fastnn` sets
    GOMP_SPINCOUNT before libgomp loads; when PyTorch loaded its libgomp first (default
    busy-wait, 10x slower steps measured with 2 threads), the compiled backends say so
    once, with the fix."""
    from fastnn import blas_pool
    backend = "cython" if "cython" in fastnn.backends() else "numba"
    code = ("import os\n"
            + ("import torch\n" if torch_first else "")
            + "import fastnn\nimport numpy as np\n"
            + "print('spin', os.environ.get('GOMP_SPINCOUNT'))\n"
            + f"fastnn.set_num_threads(2)\nfastnn.set_backend('{backend}')\n"
            + "fastnn.ops.relu(np.ones(4, np.float32))\n"
            + "print('pool', fastnn.blas_pool.on_openmp_pool())\n")
    proc = _run_python(code)
    assert proc.returncode == 0, proc.stderr
    shared = blas_pool.expected()
    assert ("spin None" if shared else "spin 1000") in proc.stdout
    assert f"pool {shared}" in proc.stdout
    warned = "an OpenMP runtime was loaded before fastnn" in proc.stderr
    assert warned == (torch_first and not shared), proc.stderr
    assert proc.stderr.count("an OpenMP runtime was loaded before fastnn") <= 1


def test_a_user_spin_setting_wins():
    proc = _run_python("import os, torch, fastnn\nfastnn.set_backend('numba')\n"
                       "print(os.environ['GOMP_SPINCOUNT'])\n", GOMP_SPINCOUNT="5")
    assert proc.returncode == 0 and proc.stdout.strip() == "5"
    assert "OpenMP runtime was loaded" not in proc.stderr


def test_openblas_spin_is_limited_unless_the_user_set_it():
    """`import fastnn` shortens OpenBLAS's idle spin (2**16 cycles instead of 2**28)
    before SciPy's OpenBLAS loads; a value in the environment is kept."""
    code = ("import os, fastnn\nfastnn.set_backend('numba')\n"
            "print(os.environ['OPENBLAS_THREAD_TIMEOUT'])\n")
    proc = _run_python(code)
    assert proc.returncode == 0 and proc.stdout.strip() == "16", proc.stderr
    proc = _run_python(code, OPENBLAS_THREAD_TIMEOUT="28")
    assert proc.returncode == 0 and proc.stdout.strip() == "28", proc.stderr


# ------------------------------------------------------------------ Ctrl-C during fit
CPU_BACKENDS = [b for b in BACKENDS if b != "cuda"]


@pytest.fixture
def sigint_at(monkeypatch):
    """sigint_at(module, name, n): SIGINT this process when the n-th call of module.name
    returns (as a Ctrl-C during a native kernel is seen once it returns), under Python's
    own SIGINT handler."""
    import signal
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)

    def arm(module, name, n):
        original, calls = getattr(module, name), []

        def call(*args, **kwargs):
            out = original(*args, **kwargs)
            calls.append(None)
            if len(calls) == n:
                os.kill(os.getpid(), signal.SIGINT)
            return out
        monkeypatch.setattr(module, name, call)
    yield arm
    signal.signal(signal.SIGINT, previous)


def _model_and_adam():
    fastnn.manual_seed(0)
    model = MLP(20, [32], 10, batchnorm=True, dropout=0.3)
    return model, optim.Adam(model.parameters(), lr=1e-2)


def _assert_same_state(model, opt, other, other_opt):
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        np.testing.assert_array_equal(a, b)   # (BatchNorm's statistics and counts too)
    mine, theirs = opt.state_dict()["state"], other_opt.state_dict()["state"]
    assert mine.keys() == theirs.keys()
    for key in mine:
        for name in mine[key]:   # (Adam's moments and step counts)
            np.testing.assert_array_equal(mine[key][name], theirs[key][name])


@pytest.mark.parametrize("where,n", [("update", 3), ("update", 4), ("evaluate", 3)])
@pytest.mark.parametrize("name", CPU_BACKENDS)
def test_ctrl_c_in_fit_leaves_one_whole_step_that_resumes_bit_for_bit(name, where, n,
                                                                     sigint_at):
    """A Ctrl-C during the optimizer's kernel raised KeyboardInterrupt after it returned:
    the parameters and Adam's moments held step 3 while Adam counted 2, and fit had put
    BatchNorm's statistics back to step 2 (going on differed from one run by 1.9e-3).
    Now fit holds the signal through the update and raises TrainingInterrupted after it
    (update 4: at the evaluation due then; evaluate 3: epoch 1's end, 5 batches), with
    the state of the whole step, which resume= continues as one uninterrupted run."""
    import json
    import signal

    from fastnn import backend, train
    from fastnn.train import TrainingInterrupted, fit
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 20)).astype(np.float32)   # 5 batches of 64
    y = rng.integers(0, 10, 300)
    options = dict(test_data=(x[:70], y[:70]), epochs=2, batch_size=64, eval_freq=2,
                   progress=False, log=False)
    with fastnn.use_backend(name):
        full_model, full_opt = _model_and_adam()
        full = fit(full_model, nn.CrossEntropyLoss(), full_opt, (x, y), **options)
        model, opt = _model_and_adam()
        sigint_at(*((backend.current(), "adam_update") if where == "update"
                    else (train, "evaluate")), n)
        try:
            fit(model, nn.CrossEntropyLoss(), opt, (x, y), **options)
            stopped = None
        except KeyboardInterrupt as exc:
            stopped = exc
        assert isinstance(stopped, TrainingInterrupted), stopped
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        whole = stopped.step
        assert whole == {"update": n, "evaluate": 5}[where]
        # the model and the optimizer hold step `whole`, as a run of that many steps
        part_model, part_opt = _model_and_adam()
        fit(part_model, nn.CrossEntropyLoss(), part_opt, (x, y), max_steps=whole,
            **{**options, "epochs": None})
        _assert_same_state(model, opt, part_model, part_opt)
        resumed = fit(model, nn.CrossEntropyLoss(), opt, (x, y), **options,
                      resume=json.loads(json.dumps(stopped.metrics)))
    _assert_same_state(model, opt, full_model, full_opt)
    for key in ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy",
                "step_curve", "steps"):
        assert resumed[key] == full[key], key


def test_fit_leaves_sigint_alone_outside_the_main_thread_or_a_users_handler():
    """fit holds SIGINT only in the main thread under Python's default handler (only the
    main thread may set a handler; a handler of the user's is theirs)."""
    import signal

    from fastnn.train import fit
    seen = []

    class Loss(nn.CrossEntropyLoss):
        def forward(self, logits, target):
            seen.append(signal.getsignal(signal.SIGINT))
            return super().forward(logits, target)
    x, y = _data(0, n=64, features=8)

    def train():
        fastnn.manual_seed(0)
        model = MLP(8, [4], 10)
        fit(model, Loss(), optim.SGD(model.parameters(), lr=0.1), (x, y), batch_size=32,
            progress=False, log=False)

    def mine(signum, frame):
        pass
    previous = signal.signal(signal.SIGINT, mine)
    try:
        train()
        worker = threading.Thread(target=train)
        worker.start()
        worker.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen == [mine] * 4
    seen.clear()
    train()   # (the default handler: fit's own while it runs)
    assert len(seen) == 2 and seen[0] not in (mine, signal.default_int_handler)


def test_a_second_ctrl_c_while_fit_holds_one_stops_it_at_once(sigint_at, monkeypatch):
    """fit holds a Ctrl-C that comes outside its windows for the next one; one that came
    during an output that does not end (a log line to a pipe nobody reads, `| less`: the
    write blocks, Python retries it after the handler) was held for good, and a second
    Ctrl-C too: the run could not be stopped. Now a second Ctrl-C while fit holds one
    raises at once, a plain KeyboardInterrupt (where it lands the state may be amid an
    update, as under a handler of the user's)."""
    import signal

    from fastnn import train
    from fastnn.train import fit
    written = []

    def blocked_write(message, bar_enabled):   # (a print blocked on a full pipe)
        for i in range(1000):
            if i in (0, 500):   # a Ctrl-C, and another while the write still blocks
                os.kill(os.getpid(), signal.SIGINT)
        written.append(message)
    monkeypatch.setattr(train, "_write", blocked_write)
    x, y = _data(0, n=64, features=8)
    fastnn.manual_seed(0)
    model = MLP(8, [4], 10)
    with pytest.raises(KeyboardInterrupt) as info:
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), (x, y),
            epochs=3, batch_size=32, progress=False, log=True)
    assert type(info.value) is KeyboardInterrupt and written == []
    assert [entry.name for entry in info.traceback][-2:] == ["blocked_write", "_handle"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_resumed_fit_stopped_before_its_first_update_gives_back_what_it_resumed(
        sigint_at):
    """A resumed fit interrupted before its first update (in the evaluation an earlier
    interrupt left owed) gave metrics None, as a fresh run's: code that keeps
    ``exc.metrics`` to resume from later (``resume = exc.metrics``) started over from
    scratch on a trained model. Its metrics are now the resume it was given, which goes
    on as the uninterrupted run, bit for bit."""
    import json

    from fastnn import backend, train
    from fastnn.train import TrainingInterrupted, fit
    rng = np.random.default_rng(1)
    x = rng.standard_normal((300, 20)).astype(np.float32)   # 5 batches of 64
    y = rng.integers(0, 10, 300)
    options = dict(test_data=(x[:70], y[:70]), epochs=2, batch_size=64, eval_freq=2,
                   progress=False, log=False)
    with fastnn.use_backend("numpy"):
        full_model, full_opt = _model_and_adam()
        full = fit(full_model, nn.CrossEntropyLoss(), full_opt, (x, y), **options)
        model, opt = _model_and_adam()
        sigint_at(backend.current(), "adam_update", 2)   # (held: the evaluation after it)
        with pytest.raises(TrainingInterrupted) as first:
            fit(model, nn.CrossEntropyLoss(), opt, (x, y), **options)
        resume = json.loads(json.dumps(first.value.metrics))
        sigint_at(train, "evaluate", 1)   # (the owed evaluation, before any update)
        with pytest.raises(TrainingInterrupted) as second:
            fit(model, nn.CrossEntropyLoss(), opt, (x, y), **options, resume=resume)
        assert second.value.step == 2 and second.value.metrics == resume
        resumed = fit(model, nn.CrossEntropyLoss(), opt, (x, y), **options,
                      resume=second.value.metrics)
    _assert_same_state(model, opt, full_model, full_opt)
    for key in ("epoch", "train_loss", "test_loss", "step_curve", "steps"):
        assert resumed[key] == full[key], key


def test_an_epoch_whose_resume_only_evaluates_says_so(sigint_at, capsys):
    """An epoch whose last batch came before the interrupt and whose evaluation was owed
    logged "(0.00 s in this run)  0 samples/s" when resumed: the resumed run trained no
    sample in it. Its line now says it made only the evaluation."""
    import json

    from fastnn import train
    from fastnn.train import TrainingInterrupted, fit
    rng = np.random.default_rng(2)
    x = rng.standard_normal((300, 20)).astype(np.float32)
    y = rng.integers(0, 10, 300)
    options = dict(test_data=(x[:70], y[:70]), epochs=2, batch_size=64, progress=False)
    with fastnn.use_backend("numpy"):
        model, opt = _model_and_adam()
        sigint_at(train, "evaluate", 1)   # (epoch 1's evaluation, after its last batch)
        with pytest.raises(TrainingInterrupted) as stopped:
            fit(model, nn.CrossEntropyLoss(), opt, (x, y), **options)
        capsys.readouterr()
        fit(model, nn.CrossEntropyLoss(), opt, (x, y), **options,
            resume=json.loads(json.dumps(stopped.value.metrics)))
    lines = capsys.readouterr().out.splitlines()
    first = next(line for line in lines if line.startswith("epoch 1/2"))
    assert first.endswith(" s (only its evaluation in this run)"), first
    second = next(line for line in lines if line.startswith("epoch 2/2"))
    assert second.endswith(" samples/s") and "in this run" not in second, second


def test_training_exceptions_survive_pickling_as_a_process_pool_sends_them():
    """TrainingDiverged and TrainingInterrupted take their fields in __init__, so the
    default pickling (the message alone) failed with a TypeError on loading."""
    import pickle
    from fastnn.train import TrainingDiverged, TrainingInterrupted
    diverged = pickle.loads(pickle.dumps(TrainingDiverged(7, 2, float("nan"), "0.weight")))
    assert (diverged.step, diverged.epoch, diverged.parameter) == (7, 2, "0.weight")
    assert "0.weight" in str(diverged)
    metrics = {"epoch": [1], "train_loss": [0.5]}
    stopped = pickle.loads(pickle.dumps(TrainingInterrupted(3, 1, "step 4", metrics)))
    assert (stopped.step, stopped.epoch, stopped.during) == (3, 1, "step 4")
    assert stopped.metrics == metrics and isinstance(stopped, KeyboardInterrupt)
    assert str(stopped) == "training interrupted during step 4 (epoch 1)"


def test_divergence_found_at_an_interrupt_names_the_last_whole_step(sigint_at):
    """An interrupt that stops fit after an update left infinite weights raises
    TrainingDiverged (no NaN checkpoint): it named the interrupted step's epoch (the
    next epoch's first forward) instead of the epoch of the update that blew up."""
    from fastnn.train import TrainingDiverged, fit
    x, y = _data(0, n=32, features=8)
    fastnn.manual_seed(0)
    model = MLP(8, [4], 10)
    sigint_at(model, "forward", 2)   # (epoch 2's first forward: one batch an epoch)
    with pytest.raises(TrainingDiverged) as info:
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=1e300),
            (x, y), epochs=3, batch_size=32, progress=False)
    assert (info.value.step, info.value.epoch) == (1, 1) and info.value.parameter
    assert np.isfinite(info.value.loss)
