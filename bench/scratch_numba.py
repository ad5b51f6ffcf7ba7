"""Throwaway measurements for the numba backend (issue 3): its kernels against the NumPy
reference and PyTorch, 2 threads, medians of interleaved repeats.

    .venv/bin/python bench/scratch_numba.py [section ...]

sections: elementwise, fused, ce, bn, mlp, compile (default: all). THREADS=n (default 2);
STAT=min reports the fastest repeat instead of the median (robust when the shared
machine is loaded). Not part of the suite:
bench/ (pytest-benchmark) gives the published numbers.
"""
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import fastnn
from fastnn import backend as registry

THREADS = int(os.environ.get("THREADS", "2"))
STAT = np.min if os.environ.get("STAT") == "min" else np.median
torch.set_num_threads(THREADS)
fastnn.set_num_threads(THREADS)
NB = registry.load("numba")
REF = registry.load("numpy")


def timeit(fns, repeats=15, inner=1):
    """Median seconds per call of each fn, calls interleaved so load spikes hit all."""
    for f in fns.values():
        f(), f()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t = time.perf_counter()
            for _ in range(inner):
                f()
            times[k].append((time.perf_counter() - t) / inner)
    return {k: float(STAT(v)) for k, v in times.items()}


def show(title, res, bytes_moved=None):
    base = res.get("torch")
    line = []
    for k, v in res.items():
        s = f"{k} {v * 1e3:8.3f} ms"
        if base:
            s += f" ({v / base:4.2f}x torch)"
        if bytes_moved:
            s += f" {bytes_moved / v / 1e9:5.1f} GB/s"
        line.append(s)
    print(f"{title:40s} " + " | ".join(line), flush=True)


def elementwise():
    n = 16 * 1024 * 1024
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n, dtype=np.float32)
    g = rng.standard_normal(n, dtype=np.float32)
    out = np.empty_like(x)
    tx, tg, tout = torch.from_numpy(x), torch.from_numpy(g), torch.from_numpy(out)
    res = timeit({"copy": lambda: np.copyto(out, x)}, repeats=9)
    show("copy 16M f32 (ceiling)", res, 8 * n)
    cases = {
        "relu": (lambda: NB.relu(x, out=out), lambda: REF.relu(x, out=out),
                 lambda: torch.clamp_min(tx, 0, out=tout), 8),
        "leaky_relu": (lambda: NB.leaky_relu(x, 0.01, out=out),
                       lambda: REF.leaky_relu(x, 0.01, out=out),
                       lambda: torch.nn.functional.leaky_relu(tx, 0.01), 8),
        "relu_backward": (lambda: NB.relu_backward(g, x, out=out),
                          lambda: REF.relu_backward(g, x, out=out),
                          lambda: torch.ops.aten.threshold_backward(tg, tx, 0), 12),
        "sigmoid": (lambda: NB.sigmoid(x, out=out), lambda: REF.sigmoid(x, out=out),
                    lambda: torch.sigmoid(tx, out=tout), 8),
        "tanh": (lambda: NB.tanh(x, out=out), lambda: REF.tanh(x, out=out),
                 lambda: torch.tanh(tx, out=tout), 8),
        "gelu": (lambda: NB.gelu(x, out=out), lambda: REF.gelu(x, out=out),
                 lambda: F.gelu(tx), 8),
        "gelu_backward": (lambda: NB.gelu_backward(g, x, out=out),
                          lambda: REF.gelu_backward(g, x, out=out),
                          lambda: torch.ops.aten.gelu_backward(tg, tx), 12),
        "sine": (lambda: NB.sine(x, 1.0, out=out), lambda: REF.sine(x, 1.0, out=out),
                 lambda: torch.sin(tx, out=tout), 8),
        "dropout p=0.5": (lambda: NB.dropout_forward(x, 0.5, 1, mask=g, out=out),
                          lambda: REF.dropout_forward(x, 0.5, 1, mask=g, out=out),
                          lambda: F.dropout(tx, 0.5), 12),
    }
    for name, (nb, ref, tt, bpe) in cases.items():
        res = timeit({"numba": nb, "numpy": ref, "torch": tt}, repeats=7)
        show(f"{name} 16M f32", res, bpe * n)


def fused():
    rng = np.random.default_rng(0)
    n, fin, fout = 4096, 1024, 1024
    x = rng.standard_normal((n, fin), dtype=np.float32)
    w = rng.standard_normal((fout, fin), dtype=np.float32) * 0.03
    b = rng.standard_normal(fout, dtype=np.float32)
    y = np.empty((n, fout), np.float32)
    go = rng.standard_normal((n, fout), dtype=np.float32)
    gw, gb, gi, sc = np.zeros_like(w), np.zeros_like(b), np.empty_like(x), np.empty_like(go)
    for act in ("leaky_relu", "sigmoid"):
        res = timeit({k: (lambda B=B: B.linear_forward(x, w, b, act, out=y))
                      for k, B in (("numba", NB), ("numpy", REF))}, repeats=7)
        show(f"linear_forward {act} 4096x1024x1024", res)
        res = timeit({k: (lambda B=B: B.linear_backward(go, x, w, y, act, grad_weight=gw,
                                                         grad_bias=gb, grad_in=gi, scratch=sc))
                      for k, B in (("numba", NB), ("numpy", REF))}, repeats=7)
        show(f"linear_backward {act} 4096x1024x1024", res)
    p = rng.standard_normal(16 << 20, dtype=np.float32)
    gp = rng.standard_normal(16 << 20, dtype=np.float32) * 1e-3
    v, m2 = np.zeros_like(p), np.zeros_like(p)
    tp, tgp = torch.from_numpy(p.copy()), torch.from_numpy(gp)
    topt = torch.optim.SGD([tp], lr=1e-3, momentum=0.9, foreach=True)
    tp.grad = tgp
    res = timeit({"numba": lambda: NB.sgd_update(p, gp, v, 1e-3, 0.9, 1e-4),
                  "numpy": lambda: REF.sgd_update(p, gp, v, 1e-3, 0.9, 1e-4),
                  "torch": topt.step}, repeats=7)
    show("sgd momentum+wd 16M f32", res, 20 * p.size)
    topt = torch.optim.Adam([tp], lr=1e-3, foreach=True)
    res = timeit({"numba": lambda: NB.adam_update(p, gp, v, m2, 10),
                  "numpy": lambda: REF.adam_update(p, gp, v, m2, 10),
                  "torch": topt.step}, repeats=7)
    show("adam 16M f32", res, 28 * p.size)


def ce():
    rng = np.random.default_rng(0)
    for n, c in ((4096, 1000), (256, 10)):
        x = rng.standard_normal((n, c), dtype=np.float32) * 3
        lab = rng.integers(0, c, n)
        grad = np.empty_like(x)
        tx, tl = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(lab)

        def tstep():
            tx.grad = None
            F.cross_entropy(tx, tl).backward()
        res = timeit({"numba": lambda: NB.softmax_cross_entropy(x, lab, grad),
                      "numpy": lambda: REF.softmax_cross_entropy(x, lab, grad),
                      "torch": tstep}, repeats=15, inner=1 if n > 1000 else 20)
        show(f"softmax-CE fwd+bwd {n}x{c}", res, 8 * x.size)


def bn():
    rng = np.random.default_rng(0)
    for shape in ((256, 1024), (32, 64, 16, 16)):
        c = shape[1]
        x = rng.standard_normal(shape, dtype=np.float32)
        go = rng.standard_normal(shape, dtype=np.float32)
        w, b = np.ones(c, np.float32), np.zeros(c, np.float32)
        rm, rv = np.zeros(c, np.float32), np.ones(c, np.float32)
        y, gi = np.empty_like(x), np.empty_like(x)
        sm, si = np.empty(c, np.float32), np.empty(c, np.float32)
        gw, gb = np.zeros(c, np.float32), np.zeros(c, np.float32)

        def run(B):
            B.batchnorm_forward(x, w, b, rm, rv, True, out=y, save_mean=sm, save_invstd=si)
            B.batchnorm_backward(go, x, w, sm, si, True, grad_weight=gw, grad_bias=gb, grad_in=gi)
        tx = torch.from_numpy(x).requires_grad_(True)
        tw = torch.ones(c, requires_grad=True)
        tb = torch.zeros(c, requires_grad=True)
        trm, trv, tgo = torch.zeros(c), torch.ones(c), torch.from_numpy(go)

        def tstep():
            tx.grad = tw.grad = tb.grad = None
            F.batch_norm(tx, trm, trv, tw, tb, True, 0.1, 1e-5).backward(tgo)
        res = timeit({"numba": lambda: run(NB), "numpy": lambda: run(REF), "torch": tstep},
                     repeats=15, inner=20)
        show(f"batchnorm fwd+bwd {shape}", res, 6 * 4 * x.size)


def mlp():
    sys.path.insert(0, ".")
    from bench import steps
    from fastnn.kernels.numba_cpu import dense  # noqa: F401
    for name, (sizes, act, n) in steps.MLP_CONFIGS.items():
        weights = steps.init_weights(sizes)
        x, lab = steps.batch((sizes[0],), n)
        pool = [(x, lab)]
        fns = {"numba": steps.fastnn_step("numba", steps.fastnn_mlp(sizes, act, weights), pool),
               "kernels": _kernel_step(sizes, act, weights, x, lab),
               "numpy": steps.fastnn_step("numpy", steps.fastnn_mlp(sizes, act, weights), pool),
               "torch": steps.torch_step(steps.torch_mlp(sizes, act, weights), pool)}
        res = timeit(fns, repeats=31, inner=5 if sizes[1] < 500 or n < 64 else 2)
        show(name, res)


def _kernel_step(sizes, act, weights, x, labels, lr=0.01, mom=0.9):
    """The MLP step written straight against the numba kernels, all buffers preallocated:
    the floor the layer API can reach."""
    n = x.shape[0]
    params = [(w.copy(), b.copy()) for w, b in weights]
    grads = [(np.zeros_like(w), np.zeros_like(b)) for w, b in weights]
    vel = [(np.zeros_like(w), np.zeros_like(b)) for w, b in weights]
    acts = [np.empty((n, w.shape[0]), np.float32) for w, _ in weights]
    gins = [np.empty((n, w.shape[1]), np.float32) for w, _ in weights]
    scratch = [np.empty((n, w.shape[0]), np.float32) for w, _ in weights]
    last = len(weights) - 1
    gl = np.empty_like(acts[-1])

    def step():
        h = x
        for i, (w, b) in enumerate(params):
            NB.linear_forward(h, w, b, "identity" if i == last else act, 0.01, out=acts[i])
            h = acts[i]
        loss, g = NB.softmax_cross_entropy(h, labels, gl)
        for i in range(last, -1, -1):
            gw, gb = grads[i]
            gw[...] = 0
            gb[...] = 0
            g = NB.linear_backward(g, acts[i - 1] if i else x, params[i][0], acts[i],
                                   "identity" if i == last else act, 0.01, gw, gb,
                                   gins[i], i > 0, scratch[i])
        for (w, b), (gw, gb), (vw, vb) in zip(params, grads, vel):
            NB.sgd_update(w, gw, vw, lr, mom)
            NB.sgd_update(b, gb, vb, lr, mom)
        return loss
    return step


_FIRST_USE = r"""
import time
t0 = time.perf_counter()
import numpy as np
import fastnn
from fastnn import backend
nb = backend.load("numba")
t1 = time.perf_counter()
x = np.ones((8, 6), np.float32)
w = np.ones((5, 6), np.float32)
for dt in (np.float32, np.float64):
    x, w = x.astype(dt), w.astype(dt)
    b = np.ones(5, dt)
    lab = np.zeros(8, np.int64)
    for act in ("identity", "relu", "leaky_relu", "sigmoid", "tanh"):
        y = nb.linear_forward(x, w, b, act)
        nb.linear_backward(y, x, w, y, act, grad_weight=np.zeros_like(w),
                           grad_bias=np.zeros_like(b))
    for a in ("relu", "sigmoid", "tanh"):
        getattr(nb, a + "_backward")(x, getattr(nb, a)(x))
    for a in ("leaky_relu", "gelu", "sine"):
        getattr(nb, a + "_backward")(x, getattr(nb, a)(x), *(() if a == "gelu" else (0.1,)))
    nb.softmax_backward(x, nb.softmax(x))
    nb.softmax_cross_entropy(y, lab); nb.softmax_cross_entropy(y, nb.softmax(y))
    nb.mse_loss(x, x); nb.bce_loss(nb.sigmoid(x), nb.sigmoid(x))
    nb.dropout_backward(x, nb.dropout_forward(x, 0.5, 0)[1])
    c = np.ones(6, dt)
    yb, sm, si = nb.batchnorm_forward(x, c, c, c.copy(), c.copy())
    nb.batchnorm_backward(x, x, c, sm, si, grad_weight=c.copy(), grad_bias=c.copy())
    nb.sgd_update(x.copy(), x, x.copy(), 0.1, 0.9)
    nb.adam_update(x.copy(), x, x.copy(), x.copy(), 1)
t2 = time.perf_counter()
print(f"import+load {t1 - t0:.2f} s, first use of the non-conv ops (serial, float32+float64) "
      f"{t2 - t1:.2f} s")
"""


def compile():
    """First-use compile time in a process with an empty cache, then a second process."""
    import subprocess
    import tempfile
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold cache", "warm cache"):
            t = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", _FIRST_USE], env=env,
                                  capture_output=True, text=True)
            print(f"{label}: {done.stdout.strip() or done.stderr[-500:]} "
                  f"(whole process {time.perf_counter() - t:.2f} s)", flush=True)


if __name__ == "__main__":
    sections = sys.argv[1:] or ["elementwise", "fused", "ce", "bn", "mlp", "compile"]
    print(f"numba backend: {fastnn.backend_info('numba')}; threads {THREADS}; {STAT.__name__}")
    for s in sections:
        globals()[s]()
