"""fastnn.models against PyTorch autograd, from the models audit: what a second backward of
one forward does (adds that forward's gradient again, as every module's backward and
PyTorch's ``retain_graph=True``)."""
import numpy as np
import pytest

import fastnn
from fastnn.models import VAE
from tests.test_probe_models import BACKENDS, close, torch_vae

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True)
def _restore_backend():
    before = fastnn.get_backend()
    yield
    fastnn.set_backend(before)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
def test_vae_second_backward_adds_the_gradient_again(backend, dtype):
    # VAE.backward dropped its forward's values, so a second call raised "backward()
    # called before forward()" (there had been a forward), where every other module's
    # backward (MultiTaskNet's, a Sequential's) adds the same gradient again
    fastnn.set_backend(backend)
    fastnn.manual_seed(0)
    rng = np.random.default_rng(3)
    model = VAE(3, 2, [5, 4], activation="tanh").to_dtype(dtype)
    x = rng.standard_normal((6, 3)).astype(dtype)
    eps = rng.standard_normal((6, 2)).astype(dtype)
    model(x, eps=eps)
    model.zero_grad()
    gx1 = model.backward()
    gx2 = model.backward()
    _, _, _, grads_t, gx_t = torch_vae(model, x, eps, "tanh")
    close(gx1, gx_t, dtype, "grad x, first backward")
    close(gx2, gx_t, dtype, "grad x, second backward")
    for name, param in model.named_parameters():
        close(param.grad, 2 * grads_t[name], dtype, name)


def test_vae_backward_before_any_forward_still_refused():
    with pytest.raises(RuntimeError, match="VAE: backward\\(\\) called before forward"):
        VAE(2, 2, [3]).backward()


@pytest.mark.parametrize("seed,error", [("x", TypeError), (1.5, TypeError), (True, TypeError),
                                        (-1, ValueError)])
def test_vae_refuses_a_seed_that_is_not_a_non_negative_int_naming_itself(seed, error):
    """It failed in NumPy's SeedSequence ('expects int or sequence of ints'), not naming
    the VAE."""
    with pytest.raises(error, match="VAE: expected seed to be a non-negative int"):
        VAE(4, seed=seed)


def test_vae_takes_none_or_a_numpy_int_as_its_seed():
    assert VAE(4, seed=None).config["seed"] is None
    a, b = VAE(4, seed=np.int64(3)), VAE(4, seed=3)
    assert a.config["seed"] == 3 and type(a.config["seed"]) is int
    a.load_state_dict(b.state_dict())   # (the weights come from fastnn's generator)
    x = np.random.default_rng(0).random((6, 4)).astype(np.float32)
    assert a(x) == b(x)   # (the training noise: from the seed)
