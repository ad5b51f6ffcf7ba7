"""The SmallCNN of fastnn.models in PyTorch, trained the way `python -m fastnn train --model
cnn --optimizer adam --lr-schedule cosine --standardize` trains it: for comparing seconds
per epoch (and accuracy) against fastnn on the same machine.

    python bench/scratch_cnn_torch.py --epochs 2 --threads 2
    python bench/scratch_cnn_torch.py --compare-steps 60 --threads 1

``--compare-steps N`` instead times N training steps (batch 128, Adam) of fastnn's
SmallCNN on the numba and cython backends and of this network, alternating in one process, and
prints wall and CPU milliseconds per step and the implied seconds per epoch (469
steps). CPU time is the steadier number on a shared machine.
"""
import argparse
import json
import time

import numpy as np
import torch

from fastnn import data


def small_cnn():
    def block(c_in, c_out):
        return [torch.nn.Conv2d(c_in, c_out, 3, padding=1), torch.nn.BatchNorm2d(c_out),
                torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
    return torch.nn.Sequential(*block(1, 32), *block(32, 64), torch.nn.Flatten(),
                               torch.nn.Linear(64 * 7 * 7, 128), torch.nn.ReLU(),
                               torch.nn.Linear(128, 10))


def accuracy(model, x, y, batch=1000):
    model.eval()
    with torch.no_grad():
        hits = sum(int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
                   for i in range(0, len(x), batch))
    model.train()
    return hits / len(x)


def compare_steps(steps, x_train, y_train):
    """Training steps of fastnn's SmallCNN (each CPU backend) against this network."""
    import fastnn
    from fastnn import models, nn, optim
    rng = np.random.default_rng(0)
    batches = [rng.choice(len(x_train), 128, replace=False) for _ in range(steps)]
    x_np, y_np = x_train.numpy(), y_train.numpy()

    def fastnn_runner(name):
        model = models.SmallCNN()
        opt, loss = optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss()

        def run(chosen):
            with fastnn.use_backend(name):
                for idx in chosen:
                    out = model.forward(x_np[idx])
                    loss.forward(out, y_np[idx])
                    model.backward(loss.backward())
                    opt.step()
                    opt.zero_grad()
        return run

    def torch_runner():
        model = small_cnn()
        opt = torch.optim.Adam(model.parameters(), 1e-3)

        def run(chosen):
            for idx in chosen:
                idx = torch.from_numpy(idx)
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x_train[idx]), y_train[idx]).backward()
                opt.step()
        return run

    runners = {f"fastnn-{b}": fastnn_runner(b) for b in fastnn.backends()
               if b in ("numba", "cython")}
    runners["torch"] = torch_runner()
    for run in runners.values():
        run(batches[:3])  # warm-up (Numba compiles here)
    times = {name: [] for name in runners}
    for _ in range(2):
        for name, run in runners.items():
            wall, cpu = time.perf_counter(), time.process_time()
            run(batches)
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    for name, pairs in times.items():
        wall = min(w for w, _ in pairs) / steps
        cpu = min(c for _, c in pairs) / steps
        print(f"{name:14s} cpu {cpu * 1e3:7.1f} ms/step ({cpu * 469:5.1f} s/epoch)  "
              f"wall {wall * 1e3:7.1f} ms/step ({wall * 469:5.1f} s/epoch)")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--compare-steps", type=int, default=0,
                        help="time this many steps against fastnn's backends instead")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.compare_steps:
        import fastnn
        fastnn.set_num_threads(args.threads)
    torch.manual_seed(0)
    x_train, y_train, x_test, y_test = data.load("fashion-mnist", flatten=False)
    mean, std = float(x_train.mean()), float(x_train.std())
    x_train = torch.from_numpy(((x_train - mean) / std)[:, None].astype(np.float32))
    x_test = torch.from_numpy(((x_test - mean) / std)[:, None].astype(np.float32))
    y_train, y_test = torch.from_numpy(y_train), torch.from_numpy(y_test)
    if args.compare_steps:
        return compare_steps(args.compare_steps, x_train, y_train)
    model = small_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps = args.epochs * ((len(x_train) + args.batch_size - 1) // args.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(0)
    seconds = []
    for epoch in range(args.epochs):
        start = time.perf_counter()
        order = torch.randperm(len(x_train), generator=gen)
        for i in range(0, len(x_train), args.batch_size):
            idx = order[i:i + args.batch_size]
            opt.zero_grad()
            loss = loss_fn(model(x_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
            sched.step()
        seconds.append(time.perf_counter() - start)
        print(f"epoch {epoch + 1}: {seconds[-1]:.1f} s, loss {loss.item():.4f}", flush=True)
    result = {"seconds_per_epoch": seconds, "test_accuracy": accuracy(model, x_test, y_test),
              "threads": args.threads, "torch": torch.__version__}
    print(json.dumps(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f)


if __name__ == "__main__":
    main()
