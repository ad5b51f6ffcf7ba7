"""Throwaway measurements of the Cython backend against the reference, Numba and PyTorch
(2 threads, same process). Not part of the test suite; `bench/` holds the real suite.

    BENCH_THREADS=2 .venv/bin/python bench/scratch_cython.py [mlp|bn|sce|elem|all]
    BENCH_THREADS=1 BENCH_CLOCK=thread .venv/bin/python bench/scratch_cython.py mlp
"""
import os
import sys
import time

import numpy as np
import torch

import fastnn
from fastnn import backend, threads

NUM_THREADS = int(os.environ.get("BENCH_THREADS", "2"))
threads.set_num_threads(NUM_THREADS)
torch.set_num_threads(NUM_THREADS)
# On a loaded machine wall time measures the scheduler; BENCH_CLOCK=thread measures the
# CPU time of the calling thread instead (meaningful with BENCH_THREADS=1 only).
_clock = time.thread_time if os.environ.get("BENCH_CLOCK") == "thread" else time.perf_counter


def median_time(fn, repeat=30, warmup=3, inner=1):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(repeat):
        t = _clock()
        for _ in range(inner):
            fn()
        ts.append((_clock() - t) / inner)
    return float(np.median(ts))


class OpsMLP:
    """A training step written against one backend's ops, with every buffer kept."""

    def __init__(self, K, sizes, batch, slope=0.01, dtype=np.float32, seed=0):
        rng = np.random.default_rng(seed)
        self.K, self.slope = K, slope
        self.W = [(rng.standard_normal((o, i)) / np.sqrt(i)).astype(dtype)
                  for i, o in zip(sizes[:-1], sizes[1:])]
        self.b = [np.zeros(o, dtype) for o in sizes[1:]]
        self.gW = [np.zeros_like(w) for w in self.W]
        self.gb = [np.zeros_like(b) for b in self.b]
        self.vW = [np.zeros_like(w) for w in self.W]
        self.vb = [np.zeros_like(b) for b in self.b]
        self.ys = [np.empty((batch, o), dtype) for o in sizes[1:]]
        self.gs = [np.empty((batch, o), dtype) for o in sizes[1:]]
        self.scr = [np.empty((batch, o), dtype) for o in sizes[1:]]
        self.gin = [np.empty((batch, i), dtype) for i in sizes[:-1]]
        self.x = rng.standard_normal((batch, sizes[0])).astype(dtype)
        self.t = rng.integers(0, sizes[-1], batch)

    def step(self):
        K, L = self.K, len(self.W)
        h = self.x
        for i in range(L):
            act = "leaky_relu" if i < L - 1 else "identity"
            h = K.linear_forward(h, self.W[i], self.b[i], act, self.slope, out=self.ys[i])
        loss, g = K.softmax_cross_entropy(h, self.t, grad=self.gs[-1])
        for gw, gb in zip(self.gW, self.gb):
            gw.fill(0)
            gb.fill(0)
        for i in reversed(range(L)):
            act = "leaky_relu" if i < L - 1 else "identity"
            inp = self.x if i == 0 else self.ys[i - 1]
            g = K.linear_backward(g, inp, self.W[i], self.ys[i], act, self.slope, self.gW[i],
                                  self.gb[i], self.gin[i], need_grad_in=i > 0,
                                  scratch=self.scr[i])
        for p, gr, v in zip(self.W + self.b, self.gW + self.gb, self.vW + self.vb):
            K.sgd_update(p, gr, v, 0.01, 0.9)
        return loss


def torch_mlp_step(sizes, batch, slope=0.01):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(torch.nn.LeakyReLU(slope))
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    x = torch.randn(batch, sizes[0])
    t = torch.randint(0, sizes[-1], (batch,))
    lossf = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad()
        loss = lossf(net(x), t)
        loss.backward()
        opt.step()
    return step


def bench_mlp():
    for sizes, batch in [((784, 1024, 1024, 10), 256), ((784, 1024, 1024, 10), 32),
                         ((784, 100, 10), 128)]:
        row = {}
        row["torch"] = median_time(torch_mlp_step(sizes, batch))
        for name in ("cython", "numba", "numpy"):
            m = OpsMLP(backend.load(name), sizes, batch)
            row[name] = median_time(m.step)
        row["torch2"] = median_time(torch_mlp_step(sizes, batch))
        tt = min(row["torch"], row["torch2"])
        print(f"MLP {sizes} batch {batch}: " + ", ".join(
            f"{k} {v * 1e3:.3f} ms ({v / tt:.2f}x torch)" for k, v in row.items()))


def bench_bn():
    x = np.random.default_rng(0).standard_normal((256, 1024)).astype(np.float32)
    g = np.ones_like(x)
    c = 1024
    w, b = np.ones(c, np.float32), np.zeros(c, np.float32)
    rm, rv = np.zeros(c, np.float32), np.ones(c, np.float32)
    out, gi = np.empty_like(x), np.empty_like(x)
    sm, si = np.empty(c, np.float32), np.empty(c, np.float32)
    gw, gb = np.zeros(c, np.float32), np.zeros(c, np.float32)
    res = {}
    for name in ("cython", "numba", "numpy"):
        K = backend.load(name)

        def f():
            K.batchnorm_forward(x, w, b, rm, rv, True, 0.1, 1e-5, False, out, sm, si)
            K.batchnorm_backward(g, x, w, sm, si, True, False, gw, gb, gi)
        res[name] = median_time(f, repeat=50, inner=5)
    bn = torch.nn.BatchNorm1d(c)
    tx = torch.from_numpy(x).requires_grad_()
    tg = torch.from_numpy(g)

    def tf():
        y = bn(tx)
        y.backward(tg)
    res["torch"] = median_time(tf, repeat=50, inner=5)
    print("BatchNorm1d 256x1024 fwd+bwd: " + ", ".join(
        f"{k} {v * 1e3:.3f} ms ({v / res['torch']:.2f}x torch)" for k, v in res.items()))


def bench_sce():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4096, 1000)).astype(np.float32)
    t = rng.integers(0, 1000, 4096)
    gr = np.empty_like(x)
    res = {}
    for name in ("cython", "numba", "numpy"):
        K = backend.load(name)
        res[name] = median_time(lambda: K.softmax_cross_entropy(x, t, gr), repeat=20)
    tx = torch.from_numpy(x).requires_grad_()
    tt = torch.from_numpy(t)

    def tf():
        tx.grad = None
        torch.nn.functional.cross_entropy(tx, tt).backward()
    res["torch"] = median_time(tf, repeat=20)
    print("softmax-CE 4096x1000 fwd+bwd: " + ", ".join(
        f"{k} {v * 1e3:.3f} ms ({v / res['torch']:.2f}x torch)" for k, v in res.items()))


def bench_elem():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1 << 24).astype(np.float32)
    g = rng.standard_normal(1 << 24).astype(np.float32)
    out = np.empty_like(x)
    copy = median_time(lambda: np.copyto(out, x), repeat=10)
    print(f"numpy copy 16M float32: {2 * x.nbytes / copy / 1e9:.1f} GB/s")
    for name in ("cython", "numba"):
        K = backend.load(name)
        for op, fn, arrays in [
                ("relu", lambda: K.relu(x, out=out), 2),
                ("leaky_relu", lambda: K.leaky_relu(x, 0.01, out=out), 2),
                ("sigmoid", lambda: K.sigmoid(x, out=out), 2),
                ("tanh", lambda: K.tanh(x, out=out), 2),
                ("gelu", lambda: K.gelu(x, out=out), 2),
                ("relu_backward", lambda: K.relu_backward(g, x, out=out), 3),
                ("leaky_relu_backward", lambda: K.leaky_relu_backward(g, x, 0.01, out=out), 3),
                ("sigmoid_backward", lambda: K.sigmoid_backward(g, x, out=out), 3),
                ("dropout_backward", lambda: K.dropout_backward(g, x, out=out), 3)]:
            t = median_time(fn, repeat=10)
            print(f"  {name:7s} {op:20s} {t * 1e3:7.2f} ms "
                  f"{arrays * x.nbytes / t / 1e9:5.1f} GB/s")
    tx, tg = torch.from_numpy(x), torch.from_numpy(g)
    tout = torch.from_numpy(out)
    t = median_time(lambda: torch.relu(tx, out=tout) if False else torch.nn.functional.relu(tx),
                    repeat=10)
    print(f"  torch   relu (allocating)        {t * 1e3:7.2f} ms")


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else "all"
    for name, fn in [("mlp", bench_mlp), ("bn", bench_bn), ("sce", bench_sce),
                     ("elem", bench_elem)]:
        if what in (name, "all"):
            fn()
