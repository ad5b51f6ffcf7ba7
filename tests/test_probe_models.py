"""fastnn.models' hand-written backward passes against PyTorch autograd, weight for weight:
MultiTaskNet (sine, shared dropout mask, mean-only BatchNorm, task B's gradient into task A
through the addition), the VAE (reparameterised sample with the same eps, Gaussian NLL + KL,
now with its gradient w.r.t. x), class visualisation (gradient ascent on the input, the
coarse-to-fine upsampling differentiated exactly), a few optimiser steps of each against the
torch twin's, and the argument checks the probes added."""
import numpy as np
import pytest

import fastnn
from fastnn import optim
from fastnn.models import MLP, VAE, MultiTaskLoss, MultiTaskNet, SmallCNN
from fastnn import visualize

torch = pytest.importorskip("torch")
F = torch.nn.functional

BACKENDS = [b for b in ("numba", "cython", "numpy") if b in fastnn.backends()]
TORCH = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


@pytest.fixture(autouse=True)
def _restore_backend():
    """The tests pick backends with set_backend; leave the current one as it was."""
    before = fastnn.get_backend()
    yield
    fastnn.set_backend(before)


def t(a):
    return torch.from_numpy(np.array(a, copy=True))


def close(actual, expected, dtype, what):
    """float64 to ~1e-10 of the array's scale, float32 to ~1e-4 (floor 1e-3 so a gradient
    that is exactly zero in theory, as a bias before BatchNorm, compares as zero)."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, what
    scale = max(1e-3, float(np.abs(expected).max())) if expected.size else 1.0
    tol = 1e-10 if np.dtype(dtype) == np.float64 else 1e-4
    err = float(np.abs(actual - expected).max()) / scale if expected.size else 0.0
    assert err < tol, f"{what}: relative error {err:.3g}"


# ---- MultiTaskNet ---------------------------------------------------------------------

def torch_multitask(model, x, y_a, y_b, mask):
    """Autograd through the same formula, parameters copied: (loss, a, logits, grads, gx)."""
    P = {n: t(p.data).requires_grad_(True) for n, p in model.named_parameters()}
    xt = t(x).requires_grad_(True)
    s = torch.sin(model.sine.omega * (xt @ P["fc1a.weight"].T + P["fc1a.bias"]))
    if mask is not None:
        s = s * t(mask)
    a = s @ P["fc2a.weight"].T + P["fc2a.bias"]
    b = xt @ P["fc1b.weight"].T + P["fc1b.bias"]
    mean = b.mean(0) if model.training else t(model.bn.running_mean)
    logits = (torch.relu(b - mean + P["bn.bias"]) + a) @ P["fc2b.weight"].T + P["fc2b.bias"]
    loss = 0.5 * ((a - t(y_a)) ** 2).sum() / len(x) + F.cross_entropy(logits, t(y_b))
    loss.backward()
    return (loss.item(), a.detach().numpy(), logits.detach().numpy(),
            {k: v.grad.numpy() for k, v in P.items()}, xt.grad.numpy())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("training, p, omega", [(True, 0.0, 1.0), (True, 0.3, 30.0),
                                                (False, 0.3, 2.5)])
def test_multitask_matches_torch(backend, dtype, training, p, omega):
    fastnn.set_backend(backend)
    fastnn.manual_seed(0)
    rng = np.random.default_rng(1)
    model = MultiTaskNet(7, 6, 5, 4, omega=omega, dropout=p).to_dtype(dtype)
    model.bn.running_mean[...] = rng.standard_normal(5)
    model.train(training)
    x = rng.standard_normal((9, 7)).astype(dtype)
    y_a = rng.standard_normal((9, 5)).astype(dtype)
    y_b = rng.integers(0, 4, 9)
    loss_fn = MultiTaskLoss()
    a, logits = model(x)
    loss, reg, ce = loss_fn(a, logits, y_a, y_b)
    model.zero_grad()
    gx = model.backward(*loss_fn.backward())
    mask = np.array(model.drop._mask) if training and p else None
    loss_t, a_t, logits_t, grads_t, gx_t = torch_multitask(model, x, y_a, y_b, mask)
    close(loss, loss_t, dtype, "loss")
    assert loss == pytest.approx(reg + ce)
    close(a, a_t, dtype, "a")
    close(logits, logits_t, dtype, "logits")
    close(gx, gx_t, dtype, "grad x")
    for name, param in model.named_parameters():
        close(param.grad, grads_t[name], dtype, name)


def test_multitask_checks_and_config():
    model = MultiTaskNet(np.int64(4), 3, 2, 2, omega=np.float32(2))
    assert model.config == dict(in_features=4, hidden_a=3, hidden_b=2, num_classes=2,
                                omega=2.0, dropout=0.1)
    assert type(model.config["in_features"]) is int
    assert list(model.state_dict()) == [
        "fc1a.weight", "fc1a.bias", "fc2a.weight", "fc2a.bias", "fc1b.weight", "fc1b.bias",
        "bn.bias", "bn.running_mean", "bn.num_batches_tracked", "fc2b.weight", "fc2b.bias"]
    model(np.zeros((5, 4), np.float32))
    with pytest.raises(ValueError, match="MultiTaskNet: expected grad_a of shape"):
        model.backward(np.zeros((1, 2), np.float32), np.zeros((5, 2), np.float32))
    assert all(np.all(p.grad == 0) for p in model.parameters())  # nothing accumulated
    with pytest.raises(ValueError, match="MultiTaskLoss: expected logits of shape"):
        MultiTaskLoss()(np.zeros((4, 3)), np.zeros((3, 2)), np.zeros((4, 3)),
                        np.zeros(3, np.int64))
    with np.errstate(all="raise"):
        total, reg, ce = MultiTaskLoss()(np.zeros((0, 3)), np.zeros((0, 2)), np.zeros((0, 3)),
                                         np.zeros(0, np.int64))
    assert np.isnan(total) and np.isnan(reg) and np.isnan(ce)  # torch's mean over nothing


@pytest.mark.parametrize("backend", BACKENDS[:2])
def test_multitask_sgd_steps_follow_torch(backend):
    """The experiment's loop (SGD with momentum, dropout masks shared) against a twin."""
    fastnn.set_backend(backend)
    fastnn.manual_seed(0)
    rng = np.random.default_rng(0)
    model = MultiTaskNet(12, 7, 5, 3, omega=2.0, dropout=0.2).double()
    P = {k: t(v.data).requires_grad_(True) for k, v in model.named_parameters()}
    running = t(model.bn.running_mean)
    x, y_a = rng.standard_normal((200, 12)), rng.standard_normal((200, 5))
    y_b = rng.integers(0, 3, 200)
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    opt_t = torch.optim.SGD(list(P.values()), lr=0.05, momentum=0.9)
    loss_fn, losses, losses_t = MultiTaskLoss(), [], []
    for _ in range(15):
        idx = rng.choice(200, 32, replace=False)
        a, logits = model(x[idx])
        losses.append(loss_fn(a, logits, y_a[idx], y_b[idx])[0])
        opt.zero_grad()
        model.backward(*loss_fn.backward())
        opt.step()
        xt = t(x[idx])
        a_t = (torch.sin(2.0 * (xt @ P["fc1a.weight"].T + P["fc1a.bias"])) * t(model.drop._mask)
               @ P["fc2a.weight"].T + P["fc2a.bias"])
        b = xt @ P["fc1b.weight"].T + P["fc1b.bias"]
        running = 0.9 * running + 0.1 * b.detach().mean(0)
        logits_t = ((torch.relu(b - b.mean(0) + P["bn.bias"]) + a_t) @ P["fc2b.weight"].T
                    + P["fc2b.bias"])
        loss_t = 0.5 * ((a_t - t(y_a[idx])) ** 2).sum() / 32 + F.cross_entropy(logits_t,
                                                                              t(y_b[idx]))
        opt_t.zero_grad()
        loss_t.backward()
        opt_t.step()
        losses_t.append(loss_t.item())
    np.testing.assert_allclose(losses, losses_t, rtol=1e-12)
    assert losses[-1] < losses[0]
    for name, param in model.named_parameters():
        np.testing.assert_allclose(param.data, P[name].detach().numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=name)
    np.testing.assert_allclose(model.bn.running_mean, running.numpy(), rtol=1e-12)


# ---- VAE ----------------------------------------------------------------------------------

def torch_vae(model, x, eps, activation, kl_weight=1.0):
    """Autograd with torch.distributions' Normal log-density and KL, of the loss
    nll + kl_weight kl: (loss, nll, kl, grads, gx)."""
    P = {n: t(p.data).requires_grad_(True) for n, p in model.named_parameters()}
    act = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}[activation]
    dist = torch.distributions

    def mlp(prefix, net, h):
        linears = [i for i, layer in enumerate(net) if type(layer).__name__ == "Linear"]
        for i in linears:
            h = h @ P[f"{prefix}.{i}.weight"].T + P[f"{prefix}.{i}.bias"]
            if i != linears[-1]:
                h = act(h)
        return h

    L, D, n = model.latent_dim, model.data_dim, len(x)
    xt = t(x).requires_grad_(True)
    enc = mlp("encoder", model.encoder, xt)
    q = dist.Normal(enc[:, :L], torch.exp(enc[:, L:]))
    dec = mlp("decoder", model.decoder, q.loc + q.scale * t(eps))
    nll = -dist.Normal(dec[:, :D], torch.exp(dec[:, D:])).log_prob(xt).sum() / n
    kl = dist.kl_divergence(q, dist.Normal(torch.zeros_like(q.loc), 1.0)).sum() / n
    loss = nll + kl_weight * kl
    loss.backward()
    return (loss.item(), nll.item(), kl.item(), {k: v.grad.numpy() for k, v in P.items()},
            xt.grad.numpy())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("hidden, activation", [([6, 5], "tanh"), ([4], "relu"),
                                                ([], "sigmoid")])
def test_vae_matches_torch(backend, dtype, hidden, activation):
    fastnn.set_backend(backend)
    fastnn.manual_seed(0)
    rng = np.random.default_rng(2)
    model = VAE(3, 2, hidden, activation=activation).to_dtype(dtype)
    x = rng.standard_normal((8, 3)).astype(dtype)
    eps = rng.standard_normal((8, 2)).astype(dtype)
    loss, nll, kl = model(x, eps=eps)
    model.zero_grad()
    gx = model.backward()
    loss_t, nll_t, kl_t, grads_t, gx_t = torch_vae(model, x, eps, activation)
    close(loss, loss_t, dtype, "loss")
    close(nll, nll_t, dtype, "nll")
    close(kl, kl_t, dtype, "kl")
    close(gx, gx_t, dtype, "grad x")  # backward() used to return None
    for name, param in model.named_parameters():
        close(param.grad, grads_t[name], dtype, name)


@pytest.mark.parametrize("kl_weight", [0.0, 0.3])
def test_vae_kl_weight_matches_torch(kl_weight):
    """forward(..., kl_weight=β) (KL warm-up): the loss nll + β kl, kl unweighted, and
    backward's gradients those of that loss."""
    fastnn.set_backend(BACKENDS[0])
    fastnn.manual_seed(0)
    rng = np.random.default_rng(3)
    model = VAE(3, 2, [6, 5]).double()
    x, eps = rng.standard_normal((8, 3)), rng.standard_normal((8, 2))
    loss, nll, kl = model(x, eps=eps, kl_weight=kl_weight)
    model.zero_grad()
    gx = model.backward()
    loss_t, nll_t, kl_t, grads_t, gx_t = torch_vae(model, x, eps, "tanh", kl_weight)
    close(loss, loss_t, np.float64, "loss")
    close(kl, kl_t, np.float64, "kl")
    assert kl > 0 and loss == pytest.approx(nll + kl_weight * kl)
    close(gx, gx_t, np.float64, "grad x")
    for name, param in model.named_parameters():
        close(param.grad, grads_t[name], np.float64, name)
    for bad, err in [(-0.1, ValueError), (float("nan"), ValueError), ("1", TypeError)]:
        with pytest.raises(err, match="kl_weight"):
            model(x, eps=eps, kl_weight=bad)


def test_vae_checks_empty_batch_and_sample():
    model = VAE(2, 2, [3])
    x = np.zeros((4, 2), np.float32)
    for eps, err in [(np.zeros((1, 2), np.float32), ValueError),  # used to broadcast
                     (np.zeros((4, 3), np.float32), ValueError),
                     (np.zeros((4, 2)), TypeError)]:
        with pytest.raises(err, match="VAE"):
            model(x, eps=eps)
    for kwargs in [dict(data_dim=0), dict(data_dim=2.5), dict(data_dim=2, latent_dim=0),
                   dict(data_dim=2, hidden=[3, 0])]:
        with pytest.raises(ValueError, match="VAE: expected"):
            VAE(**kwargs)
    assert VAE(2, hidden=np.int64(3)).config["hidden"] == [3]
    model = VAE(2, hidden=3).double()
    with np.errstate(all="raise"):
        loss, nll, kl = model(np.zeros((0, 2)))
        assert np.isnan(loss) and np.isnan(nll) and np.isnan(kl)
        assert model.backward().shape == (0, 2)
    assert all(np.all(p.grad == 0) for p in model.parameters())
    assert model.sample(3).dtype == np.float64 and model.sample(3).shape == (3, 2)
    assert list(VAE(2, 2, [3]).state_dict())[:3] == ["_extra_state", "encoder.0.weight",
                                                      "encoder.0.bias"]


def test_vae_adam_steps_follow_torch():
    fastnn.set_backend(BACKENDS[0])
    rng = np.random.default_rng(1)
    model = VAE(2, 2, [16, 16]).double()
    P = {k: t(p.data).requires_grad_(True) for k, p in model.named_parameters()}
    opt = optim.Adam(model.parameters(), lr=2e-2)
    opt_t = torch.optim.Adam(list(P.values()), lr=2e-2)
    from fastnn.experiments.vae import make_ring
    data = make_ring(512, rng).astype(np.float64)
    losses, losses_t = [], []
    for _ in range(20):
        x = data[rng.choice(512, 64, replace=False)]
        eps = rng.standard_normal((64, 2))
        losses.append(model(x, eps=eps)[0])
        opt.zero_grad()
        model.backward()
        opt.step()
        loss_t = torch_vae_params(P, x, eps)
        opt_t.zero_grad()
        loss_t.backward()
        opt_t.step()
        losses_t.append(loss_t.item())
    np.testing.assert_allclose(losses, losses_t, rtol=1e-12)
    assert losses[-1] < losses[0] - 0.3
    for name, param in model.named_parameters():
        np.testing.assert_allclose(param.data, P[name].detach().numpy(), rtol=1e-10,
                                   atol=1e-12, err_msg=name)


def torch_vae_params(P, x, eps):
    """Negative ELBO of VAE(2, 2, [16, 16]) (tanh) written with torch tensors P."""
    def mlp(prefix, h):
        for i in (0, 2, 4):
            h = h @ P[f"{prefix}.{i}.weight"].T + P[f"{prefix}.{i}.bias"]
            h = torch.tanh(h) if i < 4 else h
        return h
    xt = t(x)
    enc = mlp("encoder", xt)
    mu, log_s = enc[:, :2], enc[:, 2:]
    dec = mlp("decoder", mu + torch.exp(log_s) * t(eps))
    nll = -torch.distributions.Normal(dec[:, :2], torch.exp(dec[:, 2:])).log_prob(xt).sum()
    kl = (-log_s - 0.5 + 0.5 * (mu ** 2 + torch.exp(2 * log_s))).sum()
    return (nll + kl) / len(x)


# ---- class visualisation -----------------------------------------------------------------

def torch_bilinear(img, size):
    """visualize._resize with torch ops, so autograd differentiates the upsampling."""
    _, h, w = img.shape
    ys, xs = np.linspace(0, h - 1, size), np.linspace(0, w - 1, size)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    wy, wx = t((ys - y0)[None, :, None]), t((xs - x0)[None, None, :])
    top = img[:, y0][:, :, x0] * (1 - wx) + img[:, y0][:, :, x1] * wx
    bottom = img[:, y1][:, :, x0] * (1 - wx) + img[:, y1][:, :, x1] * wx
    return top * (1 - wy) + bottom * wy


def torch_dream(twin, target, steps, lr, jitter, wd, clip, blur_every, sigma, scales, seed,
                shape=(1, 8, 8)):
    """visualize_class's recipe with the input gradient from autograd (flat MLP input)."""
    rng = np.random.default_rng(seed)
    h = shape[1]
    image = np.clip(0.5 + 0.05 * rng.standard_normal(shape), 0, 1).astype(np.float32)
    for scale in scales:
        size = max(4, h // scale)
        small = visualize._resize(image, size) if size != h else image
        jitter_here = round(jitter * size / h)  # jitter counts pixels of the image
        for step in range(max(1, steps // len(scales))):
            dy, dx = (rng.integers(-jitter_here, jitter_here + 1, 2) if jitter_here
                      else (0, 0))
            s = t(np.asarray(small, np.float64)).requires_grad_(True)
            full = torch.roll(s, (int(dy), int(dx)), dims=(1, 2))
            full = torch_bilinear(full, h) if size != h else full
            objective = twin(full.reshape(1, -1).to(twin[0].weight.dtype))[0, target]
            (objective - 0.5 * wd * (s ** 2).sum()).backward()
            grad = s.grad.numpy()
            norm = np.linalg.norm(grad)
            if clip and norm > clip:
                grad *= clip / norm
            small = np.clip(small + lr * grad, 0, 1)
            if blur_every and (step + 1) % blur_every == 0:
                small = np.clip(visualize._blur(small, sigma), 0, 1)
        image = (visualize._resize(small, h) if size != h else small).astype(np.float32)
    return image


@pytest.mark.parametrize("scales, jitter", [((1,), 1), ((2, 1), 1), ((2, 1), 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_class_visualisation_matches_autograd(scales, jitter, dtype):
    """Multi-scale used an approximate chain rule through the upsampling (0.17 off after 40
    steps); a float64 model was refused (float32 inputs); the model was left in eval mode."""
    fastnn.set_backend(BACKENDS[0])
    fastnn.manual_seed(0)
    model = MLP(64, [32], 10, activation="tanh").to_dtype(dtype)
    twin = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.Tanh(),
                               torch.nn.Linear(32, 10)).to(TORCH[np.dtype(dtype)])
    twin.load_state_dict({k: t(v) for k, v in model.state_dict().items()})
    kw = dict(steps=40, lr=0.5, jitter=jitter, weight_decay=1e-2, clip=1.0, blur_every=10,
              blur_sigma=0.5, scales=scales, seed=3)
    model.train()
    image, before, after = visualize.visualize_class(model, 4, **kw)
    assert model.training
    expected = torch_dream(twin, 4, kw["steps"], kw["lr"], jitter, kw["weight_decay"],
                           kw["clip"], kw["blur_every"], kw["blur_sigma"], scales, 3)
    np.testing.assert_allclose(image, expected, atol=1e-5)
    assert after > before


def test_resize_backward_is_the_adjoint():
    rng = np.random.default_rng(0)
    small, big = rng.standard_normal((2, 5, 5)), rng.standard_normal((2, 13, 13))
    lhs = np.sum(visualize._resize(small, 13) * big)
    rhs = np.sum(small * visualize._resize_backward(big, 5, 5))
    assert lhs == pytest.approx(rhs, rel=1e-12)


def test_model_state_dict_names_follow_torch_sequential():
    mlp = MLP(4, [3], 2, batchnorm=True, dropout=0.1)
    twin = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.ReLU(),
                               torch.nn.Dropout(0.1), torch.nn.Linear(3, 2))
    assert list(mlp.state_dict()) == list(twin.state_dict())
    cnn = SmallCNN(channels=(2, 3), hidden=4, dropout=0.2)
    assert list(cnn.state_dict())[:7] == ["0.weight", "0.bias", "1.weight", "1.bias",
                                          "1.running_mean", "1.running_var",
                                          "1.num_batches_tracked"]
    assert list(cnn.state_dict())[-4:] == ["9.weight", "9.bias", "12.weight", "12.bias"]


def test_slicing_a_built_in_model_gives_the_layers_as_a_sequential():
    """model[:3] of an MLP or SmallCNN (fastnn.load gives them back from train --save)
    called their constructors with an OrderedDict ('missing 2 required positional
    arguments'); a feature extractor is a plain Sequential of the layers."""
    from fastnn import models, nn
    mlp = models.MLP(4, [8, 6], 3)
    head = mlp[:3]
    assert type(head) is nn.Sequential and list(head) == list(mlp)[:3]
    x = np.ones((2, 4), np.float32)
    np.testing.assert_array_equal(head(x), mlp[2](mlp[1](mlp[0](x))))
    assert type(models.SmallCNN(1, 8, 3, channels=(2, 3))[:2]) is nn.Sequential


def test_one_multitask_loss_shared_by_threads_gives_each_its_gradients():
    """As nn's losses: thread B's forward between thread A's forward and backward gave A
    B's gradients."""
    import threading
    rng = np.random.default_rng(0)

    def batch(n):
        return (rng.standard_normal((n, 3)), rng.standard_normal((n, 2)),
                rng.standard_normal((n, 3)), rng.integers(0, 2, n))

    a_args, b_args = batch(4), batch(6)
    expected = []
    for args in (a_args, b_args):
        alone = MultiTaskLoss()
        expected.append((alone(*args), alone.backward()))
    shared, got = MultiTaskLoss(), {}
    a_ran, b_ran = threading.Event(), threading.Event()

    def thread_a():
        loss = shared(*a_args)
        a_ran.set()
        b_ran.wait(10)
        got["a"] = (loss, shared.backward())

    def thread_b():
        a_ran.wait(10)
        got["b"] = (shared(*b_args), shared.backward())
        b_ran.set()

    threads = [threading.Thread(target=thread_a), threading.Thread(target=thread_b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for name, (loss, grads) in zip("ab", expected):
        assert got[name][0] == loss
        for g, want in zip(got[name][1], grads):
            np.testing.assert_array_equal(g, want)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("hooked", [False, True])
def test_multitask_and_vae_backward_skip_the_input_gradient_on_request(backend, hooked):
    # a training loop discards the input's gradient: need_grad_in=False skips its
    # products (MultiTaskNet: one per branch and their sum; VAE: the encoder's) and gives
    # the same parameter gradients, bit for bit
    fastnn.set_backend(backend)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 12)).astype(np.float32)
    y_a = rng.standard_normal((6, 5)).astype(np.float32)
    y_b = rng.integers(0, 3, 6)

    def multitask_grads(need):
        fastnn.manual_seed(1)
        net = MultiTaskNet(12, 7, 5, 3, dropout=0.0)
        if hooked:   # (the public backward path of a hooked layer)
            net.fc1a.register_full_backward_hook(lambda m, gi, go: None)
        loss = MultiTaskLoss()
        loss.forward(*net(x), y_a, y_b)
        got = net.backward(*loss.backward(), need_grad_in=need)
        return got, [p.grad.copy() for p in net.parameters()]

    def vae_grads(need):
        fastnn.manual_seed(1)
        vae = VAE(12, 2, hidden=(8,), seed=3)
        if hooked:
            vae.encoder[0].register_full_backward_hook(lambda m, gi, go: None)
        vae.forward(x)
        got = vae.backward(need_grad_in=need)
        return got, [p.grad.copy() for p in vae.parameters()]

    for grads in (multitask_grads, vae_grads):
        full, want = grads(True)
        skipped, got = grads(False)
        assert full.shape == x.shape and skipped is None
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
