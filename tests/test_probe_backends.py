"""Probes of the backend registry and thread settings against PyTorch's behaviour."""
import numpy as np
import pytest

import fastnn


@pytest.fixture
def restore_threads():
    before = fastnn.get_num_threads()
    yield
    fastnn.set_num_threads(before)


def test_set_num_threads_takes_numpy_ints(restore_threads):
    """torch.set_num_threads(np.int64(2)) works; fastnn refused it."""
    fastnn.set_num_threads(np.int64(1))
    assert fastnn.get_num_threads() == 1 and type(fastnn.get_num_threads()) is int


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, np.bool_(True), "2", None, 2**31, 10**30])
def test_set_num_threads_refuses_before_changing(restore_threads, bad):
    """A count too large for OpenMP's C int raised OverflowError after the count had
    already changed (get_num_threads() then returned it); PyTorch raises ValueError/
    RuntimeError, so fastnn's error is both."""
    fastnn.set_num_threads(1)
    with pytest.raises(ValueError, match="positive int") as info:
        fastnn.set_num_threads(bad)
    assert isinstance(info.value, RuntimeError)
    assert fastnn.get_num_threads() == 1


@pytest.mark.parametrize("bad", ["", "nope"])
def test_backend_info_refuses_a_bad_name(bad):
    """backend_info('') described the current backend instead of refusing the name."""
    with pytest.raises(ValueError, match="unknown backend"):
        fastnn.backend_info(bad)


def test_fastnn_backend_env_error_names_the_variable(monkeypatch):
    """An unknown FASTNN_BACKEND surfaced at the first op as 'unknown backend', without
    saying the name came from the environment."""
    from fastnn import backend
    monkeypatch.setenv("FASTNN_BACKEND", "bogus")
    with pytest.raises(ValueError, match="FASTNN_BACKEND: unknown backend 'bogus'"):
        backend.default_backend_name()


def test_gradcheck_raise_exception_false_returns_false():
    """torch.autograd.gradcheck(..., raise_exception=False) returns False on a mismatch;
    fastnn.gradcheck had no such argument, and its GradcheckError was no RuntimeError
    (PyTorch's is)."""
    from fastnn import nn
    from fastnn.gradcheck import GradcheckError

    class Wrong(nn.Module):
        def forward(self, x):
            return 2 * x

        def backward(self, grad_out):
            return 3 * grad_out

    x = np.random.default_rng(0).standard_normal((3, 2))
    assert fastnn.gradcheck(Wrong(), x, raise_exception=False) is False
    assert fastnn.gradcheck(nn.Tanh(), x, raise_exception=False) is True
    with pytest.raises(RuntimeError, match="analytic"):
        fastnn.gradcheck(Wrong(), x)
    with pytest.raises(AssertionError):
        fastnn.gradcheck(Wrong(), x)
    with pytest.raises(TypeError):
        fastnn.gradcheck(lambda v: v, x, raise_exception=False)


@pytest.mark.parametrize("argv", [
    ("train", "--dataset", "digits", "--epochs", "1", "--no-progress"),
    ("bench", "--quick"),
])
def test_cli_refuses_a_thread_count_beyond_a_c_int(capsys, restore_threads, argv):
    """--threads 3000000000 ended in a traceback from set_num_threads."""
    from fastnn import cli
    status = cli.main([*argv, "--threads", "3000000000"])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: --threads") and "2**31" in err, err


def test_an_unknown_fastnn_blas_is_ignored_with_a_warning(monkeypatch):
    """FASTNN_BLAS=openblass (misspelt) silently ran the default, as FASTNN_NUM_THREADS=x
    does not (that one warns)."""
    from fastnn import mkl_blas
    monkeypatch.setattr(mkl_blas, "intel_cpu", lambda: False)
    monkeypatch.setenv(mkl_blas.ENV, "openblass")
    with pytest.warns(RuntimeWarning, match="FASTNN_BLAS='openblass'"):
        assert mkl_blas.wanted() is False


@pytest.mark.parametrize("value", ["\u00b2", "3000000000"])
def test_a_thread_count_variable_no_c_int_is_ignored_with_a_warning(monkeypatch, value):
    """FASTNN_NUM_THREADS='²' raised ValueError from int() (str.isdigit takes it) and
    '3000000000' became the count, which OverflowError'd at the first compiled op."""
    import os
    import warnings

    from fastnn import threads
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("FASTNN_NUM_THREADS", value)
    monkeypatch.setattr(threads, "_default_num_threads", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert threads._default_threads() == (os.cpu_count() or 1)
    assert any("not a positive int" in str(w.message) for w in caught)


def _none_losses(rng):
    from fastnn import nn
    p = rng.standard_normal((3, 4))
    return {
        "mse": (nn.MSELoss(reduction="none"), (p, rng.standard_normal((3, 4)))),
        "cross_entropy": (nn.CrossEntropyLoss(reduction="none"), (p, np.array([0, 3, 1]))),
        "bce_logits": (nn.BCEWithLogitsLoss(reduction="none"),
                       (p, rng.uniform(0, 1, (3, 4)))),
        "huber": (nn.HuberLoss(reduction="none", delta=5.0), (p, rng.standard_normal((3, 4)))),
        "nll": (nn.NLLLoss(reduction="none"), (p, np.array([1, 0, 2]))),
    }


@pytest.mark.parametrize("name", ["mse", "cross_entropy", "bce_logits", "huber", "nll"])
def test_gradcheck_of_a_loss_with_reduction_none(backend, name):
    """torch.autograd.gradcheck takes a per-element loss; fastnn.gradcheck raised
    'ValueError: setting an array element with a sequence' for reduction='none'."""
    loss, inputs = _none_losses(np.random.default_rng(0))[name]
    assert fastnn.gradcheck(loss, inputs) is True


def test_gradcheck_rejects_a_wrong_per_element_loss_gradient():
    from fastnn import nn
    from fastnn.gradcheck import GradcheckError

    class HalfMSE(nn.MSELoss):
        def backward(self, grad=None):
            return super().backward(grad) / 2

    rng = np.random.default_rng(0)
    with pytest.raises(GradcheckError, match="pred"):
        fastnn.gradcheck(HalfMSE(reduction="none"),
                         (rng.standard_normal((3, 2)), rng.standard_normal((3, 2))))


def test_gradcheck_refuses_a_module_with_several_outputs():
    """An LSTM (forward returns a tuple) gave AttributeError: 'tuple' object has no
    attribute 'shape'."""
    from fastnn import nn
    with pytest.raises(TypeError, match="gradcheck: a Module with one output array"):
        fastnn.gradcheck(nn.LSTM(4, 3), np.random.default_rng(0).standard_normal((2, 3, 4)))


@pytest.mark.parametrize("name, key", [("cython", "num_threads"),
                                       ("numba", "numba_num_threads")])
def test_backend_info_thread_count_after_another_thread_set_it(restore_threads, name, key):
    """OpenMP's and numba's counts are per thread: after set_num_threads(1) in a worker
    thread, backend_info() in the main thread still reported the old count, though the
    main thread's next kernel ran on one thread."""
    import threading
    if name not in fastnn.backends():
        pytest.skip(f"{name} is not available")
    if name == "cython" and not fastnn.backend_info(name)["openmp"]:
        pytest.skip("a build without OpenMP (FASTNN_NO_OPENMP=1) has no per-thread count")
    fastnn.set_num_threads(2)
    assert fastnn.backend_info(name)[key] == 2
    worker = threading.Thread(target=fastnn.set_num_threads, args=(1,))
    worker.start()
    worker.join()
    assert fastnn.backend_info(name)[key] == 1


def test_numba_backend_info_in_a_forked_child_says_one_thread(restore_threads):
    """In a child forked after OpenMP loaded the numba kernels run on one thread
    (README, Processes); backend_info('numba')['numba_num_threads'] still said 2."""
    import os
    if "numba" not in fastnn.backends() or not hasattr(os, "fork"):
        pytest.skip("numba or os.fork is not available")
    fastnn.set_num_threads(2)
    with fastnn.use_backend("numba"):
        fastnn.ops.relu(np.ones(1 << 16, np.float32))   # loads OpenMP in the parent
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            os.write(write, str(fastnn.backend_info("numba")["numba_num_threads"]).encode())
        finally:
            os._exit(0)
    os.close(write)
    got = os.read(read, 16).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert got == "1"


def test_gradcheck_with_eps_zero_fails_as_a_mismatch():
    """eps=0 raised ZeroDivisionError; torch.autograd.gradcheck reports NaN numerical
    gradients as a GradcheckError (False with raise_exception=False)."""
    from fastnn import nn
    from fastnn.gradcheck import GradcheckError
    x = np.random.default_rng(0).standard_normal((2, 3))
    with pytest.raises(GradcheckError, match="nan"):
        fastnn.gradcheck(nn.Tanh(), x, eps=0.0)
    assert fastnn.gradcheck(nn.MSELoss(), (x, x + 1), eps=0.0, raise_exception=False) is False
