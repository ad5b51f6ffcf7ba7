"""The VAE keeps the arrays of a step that no caller sees (its elementwise terms, the MLPs'
outputs and the gradients between them) from step to step instead of allocating them
anew: losses, gradients and Adam steps still follow PyTorch autograd through batch-size
changes (the arrays made anew), eval mode, a second backward and no_grad evaluations
between steps; the arrays it returns are not overwritten by later steps, threads sharing
one model do not share its arrays, a steady-state training step allocates none of the
(N, data_dim) temporaries it used to, and sample() between steps no longer makes the next
step's second backward raise. The Bernoulli decoder (likelihood='bernoulli', logits and
the summed BCE with logits) follows PyTorch's binary_cross_entropy_with_logits the same
way, and round-trips through a checkpoint."""
import threading

import numpy as np
import pytest

import fastnn
from allocation_peaks import peak_of_step
from conftest import assert_close
from fastnn import optim
from fastnn.models import VAE

torch = pytest.importorskip("torch")


def torch_params(model):
    """The model's parameters as torch leaf tensors, by name."""
    return {name: torch.tensor(np.array(p.data), requires_grad=True)
            for name, p in model.named_parameters()}


def torch_negative_elbo(model, P, x, eps):
    """(loss, nll, kl, x as a leaf tensor) of model (tanh MLPs) written with torch tensors P,
    through torch.distributions' Normal log-density (a bernoulli model: torch's
    binary_cross_entropy_with_logits, reduction='sum' over N) and KL."""
    def mlp(prefix, net, h):
        linears = [i for i, layer in enumerate(net) if type(layer).__name__ == "Linear"]
        for i in linears:
            h = h @ P[f"{prefix}.{i}.weight"].T + P[f"{prefix}.{i}.bias"]
            h = torch.tanh(h) if i != linears[-1] else h
        return h
    L, D, n = model.latent_dim, model.data_dim, len(x)
    xt = torch.tensor(np.array(x), requires_grad=True)
    enc = mlp("encoder", model.encoder, xt)
    q = torch.distributions.Normal(enc[:, :L], torch.exp(enc[:, L:]))
    dec = mlp("decoder", model.decoder, q.loc + q.scale * torch.tensor(np.array(eps)))
    if model.likelihood == "bernoulli":
        bce = torch.nn.functional.binary_cross_entropy_with_logits
        nll = bce(dec, xt, reduction="sum") / n
    else:
        p_x = torch.distributions.Normal(dec[:, :D], torch.exp(dec[:, D:]))
        nll = -p_x.log_prob(xt).sum() / n
    prior = torch.distributions.Normal(torch.zeros_like(q.loc), 1.0)
    kl = torch.distributions.kl_divergence(q, prior).sum() / n
    return nll + kl, nll, kl, xt


def check_close(actual, expected, dtype, what):
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
    scale = max(1.0, float(np.abs(expected).max())) if np.size(expected) else 1.0
    assert_close(actual, expected, dtype, scale=scale, err_msg=what)


def data(rng, likelihood, shape, dtype):
    """Test inputs: standard normal, or for a bernoulli model intensities in [0, 1] with
    some exact 0s and 1s (an image's background and strokes)."""
    if likelihood == "gaussian":
        return rng.standard_normal(shape).astype(dtype)
    return np.clip(rng.uniform(-0.3, 1.3, shape), 0, 1).astype(dtype)


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
@pytest.mark.parametrize("need_grad_in", [True, False])
def test_steps_with_kept_arrays_follow_torch(backend, dtype, need_grad_in, likelihood):
    rng = np.random.default_rng(0)
    fastnn.manual_seed(0)
    model = VAE(5, 3, [6, 4], seed=4, likelihood=likelihood).to_dtype(dtype)
    noise = np.random.default_rng(4)   # the model's own generator, twinned
    P = torch_params(model)
    opt = optim.Adam(model.parameters(), lr=1e-2)
    opt_t = torch.optim.Adam(list(P.values()), lr=1e-2)
    for step, n in enumerate([8, 8, 3, 3, 8, 8]):   # (the arrays made anew at 3 and 8)
        x = data(rng, likelihood, (n, 5), dtype)
        given = step % 2 == 1
        eps = rng.standard_normal((n, 3)).astype(dtype) if given else None
        eps_t = eps if given else noise.standard_normal((n, 3)).astype(dtype)
        model.train(step != 3)
        losses = model(x, eps=eps)
        opt.zero_grad()
        gx = model.backward(need_grad_in=need_grad_in)
        loss_t, nll_t, kl_t, xt = torch_negative_elbo(model, P, x, eps_t)
        opt_t.zero_grad()
        loss_t.backward(retain_graph=True)
        for got, want, what in zip(losses, (loss_t, nll_t, kl_t), ("loss", "nll", "kl")):
            check_close(got, want.item(), dtype, f"step {step}: {what}")
        if step == 1:   # a second backward adds the same gradient again (retain_graph)
            again = model.backward(need_grad_in=need_grad_in)
            loss_t.backward()
            if need_grad_in:
                np.testing.assert_array_equal(again, gx)
        if need_grad_in:
            check_close(gx, xt.grad / (2 if step == 1 else 1), dtype, f"step {step}: grad x")
        else:
            assert gx is None
        for name, p in model.named_parameters():
            check_close(p.grad, P[name].grad, dtype, f"step {step}: {name}.grad")
        opt.step()
        opt_t.step()
        if step == 2:   # an evaluation between steps: fresh arrays, nothing kept
            x_eval = data(rng, likelihood, (4, 5), dtype)
            with fastnn.no_grad():
                evaluated = model(x_eval)
            with torch.no_grad():
                want = torch_negative_elbo(model, P, x_eval,
                                           noise.standard_normal((4, 3)).astype(dtype))[0]
            check_close(evaluated[0], want.item(), dtype, "no_grad loss")
    for name, p in model.named_parameters():
        check_close(p.data, P[name], dtype, f"{name} after the steps")


def test_returned_arrays_outlive_later_steps(backend):
    # as PyTorch's tensors: a gradient or samples taken from one step are the caller's,
    # not the model's arrays that the next step (of the same batch size) rewrites
    rng = np.random.default_rng(1)
    fastnn.manual_seed(0)
    model = VAE(6, 2, [5])
    P = torch_params(model)
    x1, x2 = (rng.standard_normal((7, 6)).astype(np.float32) for _ in range(2))
    eps1, eps2 = (rng.standard_normal((7, 2)).astype(np.float32) for _ in range(2))
    inputs = [a.copy() for a in (x1, x2, eps1, eps2)]
    samples = model.sample(7, rng=0)
    kept_samples = samples.copy()
    model(x1, eps=eps1)
    gx1 = model.backward()
    kept = gx1.copy()
    model(x2, eps=eps2)
    gx2 = model.backward()
    gx2_again = model.backward()
    model.sample(7, rng=1)
    np.testing.assert_array_equal(gx1, kept)
    np.testing.assert_array_equal(samples, kept_samples)
    assert not np.shares_memory(gx1, gx2) and not np.shares_memory(gx2, gx2_again)
    np.testing.assert_array_equal(gx2_again, gx2)
    for given, before in zip((x1, x2, eps1, eps2), inputs):   # the inputs are left alone
        np.testing.assert_array_equal(given, before)
    loss_t, _, _, xt = torch_negative_elbo(model, P, x1, eps1)
    loss_t.backward()
    check_close(kept, xt.grad, np.float32, "the first step's grad x")


def test_sample_between_steps_leaves_the_next_backward_taken_twice_alone(backend):
    # sample() ran the decoder through its public call, which counted a forward that no
    # backward followed: the next step's second backward (PyTorch's retain_graph=True)
    # raised "backward called 2 times after 2 forward calls". The steps run the MLPs
    # through their kept arrays now, as the layers of a Sequential run, uncounted.
    rng = np.random.default_rng(3)
    fastnn.manual_seed(0)
    model = VAE(4, 2, [5])
    x = rng.standard_normal((6, 4)).astype(np.float32)
    eps = rng.standard_normal((6, 2)).astype(np.float32)
    model(x, eps=eps)
    model.backward()
    model.sample(3)
    model(x, eps=eps)
    model.zero_grad()
    model.backward()
    model.backward()
    P = torch_params(model)
    loss_t = torch_negative_elbo(model, P, x, eps)[0]
    loss_t.backward(retain_graph=True)
    loss_t.backward()
    for name, p in model.named_parameters():
        check_close(p.grad, P[name].grad, np.float32, name)


def test_threads_sharing_a_model_keep_arrays_of_their_own(backend):
    # (PyTorch's modules may be called from several threads at once) each thread's
    # forward writes arrays of its own: the losses are those of calls one at a time
    fastnn.manual_seed(0)
    model = VAE(40, 2, [16])
    rng = np.random.default_rng(2)
    batches = [(rng.standard_normal((32, 40)).astype(np.float32),
                rng.standard_normal((32, 2)).astype(np.float32)) for _ in range(4)]
    alone = [model(x, eps=eps) for x, eps in batches]
    together = [None] * len(batches)
    start = threading.Barrier(len(batches))

    def work(i):
        with fastnn.use_backend(backend):   # (a new thread starts on the default one)
            start.wait()
            together[i] = [model(*batches[i]) for _ in range(20)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i, runs in enumerate(together):
        assert runs == [alone[i]] * 20, f"thread {i}"
    # an ended thread's arrays leave the model with it (as a layer's buffers do)
    main = threading.get_ident()
    assert [slot[1] for slot in model._scratch if slot[0] == "step_arrays"] == [main]


@pytest.mark.parametrize("likelihood", ["gaussian", "bernoulli"])
@pytest.mark.parametrize("backend", [b for b in fastnn.backends() if b in ("numba", "cython")])
def test_a_steady_step_allocates_no_batch_sized_temporaries(backend, likelihood):
    # the elementwise terms, their two concatenations and the MLPs' outputs took 5.2 MB
    # a step at batch 128 (13 arrays of (N, data_dim) or more); the NumPy reference's
    # kernels allocate their own temporaries, so the compiled backends are measured.
    # What remains is NumPy's iteration buffers for the ufuncs over the halves of the
    # (N, 2 data_dim) arrays: up to 8192 elements an operand, whatever the batch size.
    batch, dim = 256, 784
    rng = np.random.default_rng(0)
    x = rng.random((batch, dim)).astype(np.float32)
    with fastnn.use_backend(backend):
        fastnn.manual_seed(0)
        model = VAE(dim, 2, (32, 16), likelihood=likelihood)
        opt = optim.SGD(model.parameters(), lr=1e-6, momentum=0.9)

        def step(need_grad_in):
            opt.zero_grad()
            model(x)
            model.backward(need_grad_in=need_grad_in)
            opt.step()
        one_array = batch * dim * 4   # bytes of an (N, data_dim) float32 array
        assert peak_of_step(lambda: step(False)) < one_array // 8
        # with the input's gradient: that array alone, the caller's
        assert peak_of_step(lambda: step(True)) < one_array * 9 // 8


def test_bernoulli_samples_and_reconstructions_are_probabilities(backend):
    fastnn.manual_seed(0)
    model = VAE(6, 2, [5], likelihood="bernoulli")
    x = data(np.random.default_rng(5), "bernoulli", (4, 6), np.float32)
    P = torch_params(model)
    samples = model.sample(3, rng=0)
    z = torch.tensor(np.random.default_rng(0).standard_normal((3, 2)).astype(np.float32))
    for got, h in ((samples, z), (model.reconstruct(x), None)):
        if h is None:   # the decoder at the encoder's mean
            h = torch.tensor(x)
            for i in (0, 2):
                h = h @ P[f"encoder.{i}.weight"].T + P[f"encoder.{i}.bias"]
                h = torch.tanh(h) if i == 0 else h[:, :2]
        for i in (0, 2):
            h = h @ P[f"decoder.{i}.weight"].T + P[f"decoder.{i}.bias"]
            h = torch.tanh(h) if i == 0 else torch.sigmoid(h)
        assert got.shape == h.shape and got.dtype == np.float32
        check_close(got, h, np.float32, "probabilities")
    gaussian = VAE(6, 2, [5])
    np.testing.assert_array_equal(gaussian.reconstruct(x), gaussian.decoder(
        gaussian.encoder(x)[:, :2].copy())[:, :6])


def test_likelihood_is_kept_by_a_checkpoint_and_checked(tmp_path):
    fastnn.manual_seed(0)
    model = VAE(6, 2, [5], likelihood="bernoulli")
    assert model.config["likelihood"] == "bernoulli" and len(model.decoder[-1].bias.data) == 6
    fastnn.save(model, tmp_path / "vae.npz")
    loaded = fastnn.load(tmp_path / "vae.npz")
    assert type(loaded) is VAE and loaded.likelihood == "bernoulli"
    x = data(np.random.default_rng(1), "bernoulli", (3, 6), np.float32)
    assert loaded(x) == model(x)   # (the same weights and noise generator state)
    # a config from before the option (no 'likelihood') builds the Gaussian decoder
    old = {key: value for key, value in model.config.items() if key != "likelihood"}
    gaussian = VAE(**old)
    assert gaussian.likelihood == "gaussian" and gaussian.decoder[-1].bias.data.shape == (12,)
    for bad in ("Bernoulli", "normal", None, 1):
        with pytest.raises(ValueError, match="'gaussian' or 'bernoulli'"):
            VAE(6, likelihood=bad)
