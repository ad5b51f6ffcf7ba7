"""The Bernoulli VAE of `python -m fastnn vae --dataset ...` in PyTorch: the same network
(tanh MLPs D-hidden-2L and L-hidden reversed-D, decoder logits, NLL the per-image sum of
binary cross-entropy with logits, the Gaussian KL), Adam, batch 128, and the same
held-out number (the single-sample negative ELBO on the test split with the fixed noise
of fastnn's held_out_nelbo, seed 123), for comparing the ELBO it reaches.

    python bench/vae_torch.py --dataset fashion-mnist \\
        --data-root /usr/share/datasets/fashion-mnist \\
        --latent-dim 20 --hidden 512,256 --epochs 10 --lr 1e-3 --metrics torch_vae.json

The initial weights are PyTorch's own (no common initialisation with fastnn): compare the
curves, not single steps.
"""
import argparse
import json
import time

import numpy as np
import torch

from fastnn import data


def mlp(sizes):
    """Linear layers of ``sizes`` with tanh between them (none after the last)."""
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(n_in, n_out), torch.nn.Tanh()]
    return torch.nn.Sequential(*layers[:-1])


def negative_elbo(encoder, decoder, x, eps):
    """The batch mean of NLL + KL for x (N, D) in [0, 1] with noise eps (N, L)."""
    latent = eps.shape[1]
    h = encoder(x)
    mu_z, log_sz = h[:, :latent], h[:, latent:]
    logits = decoder(mu_z + torch.exp(log_sz) * eps)
    nll = torch.nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = (-log_sz - 0.5 + 0.5 * (mu_z ** 2 + torch.exp(2 * log_sz))).sum()
    return (nll + kl) / len(x)


def held_out(encoder, decoder, x, latent, batch_size=2000):
    """fastnn's held_out_nelbo: fixed noise (NumPy seed 123), the mean over x's rows."""
    eps = torch.tensor(np.random.default_rng(123).standard_normal((len(x), latent))
                       .astype(np.float32))
    total = 0.0
    with torch.no_grad():
        for s in range(0, len(x), batch_size):
            part = x[s:s + batch_size]
            loss = negative_elbo(encoder, decoder, part, eps[s:s + batch_size])
            total += loss.item() * len(part)
    return total / len(x)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--latent-dim", type=int, default=2)
    parser.add_argument("--hidden", default="512,256")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--metrics", default=None)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    x, _, x_test, _ = data.load(args.dataset, root=args.data_root, flatten=True)
    x, x_test = torch.tensor(x), torch.tensor(x_test)
    hidden = [int(h) for h in args.hidden.split(",")]
    latent = args.latent_dim
    encoder = mlp([x.shape[1], *hidden, 2 * latent])
    decoder = mlp([latent, *hidden[::-1], x.shape[1]])
    opt = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=args.lr)
    curve = [held_out(encoder, decoder, x_test, latent)]
    start = time.perf_counter()
    for epoch in range(args.epochs):
        order = torch.randperm(len(x))
        for s in range(0, len(x), args.batch_size):
            batch = x[order[s:s + args.batch_size]]
            loss = negative_elbo(encoder, decoder, batch, torch.randn(len(batch), latent))
            opt.zero_grad()
            loss.backward()
            opt.step()
        curve.append(held_out(encoder, decoder, x_test, latent))
        print(f"epoch {epoch + 1}: held-out negative ELBO {curve[-1]:.2f}", flush=True)
    metrics = {"test_nelbo_curve": curve, "seconds": time.perf_counter() - start,
               "torch": torch.__version__, "config": vars(args)}
    if args.metrics:
        with open(args.metrics, "w") as f:
            json.dump(metrics, f, indent=1)


if __name__ == "__main__":
    main()
