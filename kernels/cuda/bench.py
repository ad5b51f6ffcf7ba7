"""GPU measurements of issue 7, for a machine with a CUDA GPU (the H200 numbers are in
bench/results/cuda_gpu.json and BENCHMARKS.md):

    python -m fastnn.kernels.cuda.bench [--quick] [--json out.json] [--sections mlp,...]

* the device's copy bandwidth (a grid-stride copy kernel, read + write bytes);
* MLP training step 784-4096-4096-10, ReLU, batch 1024, float32, SGD with momentum:
  through the layer API (``model.to("cuda")``, ``fastnn.optim.SGD``, a device batch;
  with cuBLAS on raw pointers and, alternated with it, through CuPy arrays),
  composed from the cuda ops, and PyTorch CUDA (its step ends with ``loss.item()``, as
  fastnn's loss is a Python float);
* SmallCNN training step, batch 128, Adam, layer API against PyTorch CUDA;
* softmax-cross-entropy 4096x1000 and BatchNorm1d 256x1024 / 4096x1024 forward +
  backward, as GB/s of the bytes they must move (read inputs once, write outputs once)
  and as a fraction of the measured copy bandwidth.

Medians of repeated runs after 3 warm-up calls (compilation excluded), the device
synchronised inside each timed call. ``--quick`` uses tiny sizes (a smoke run, also
under the simulator). ``--sections`` runs some of the sections (mlp, cnn, bandwidth:
the copy bandwidth with softmax-CE and BatchNorm), so that a GPU session with little
time runs the ones it needs most first, each in its own process and time limit;
``--json`` then adds them to what the file already holds.
"""
import argparse
import json
import os
import statistics
import time

import numpy as np
from numba import cuda

from . import backend_info, config
from . import batchnorm as _bn
from . import dense as _dense
from . import gemm as _gemm
from . import losses as _losses
from .launch import jit_kernel


def _time(fn, repeats, sync):
    for _ in range(3):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@jit_kernel
def _copy(src, dst):
    for i in range(cuda.grid(1), src.size, cuda.gridsize(1)):
        dst[i] = src[i]


def copy_bandwidth(n, repeats):
    src = cuda.to_device(np.ones(n, np.float32))
    dst = cuda.device_array_like(src)
    t = _time(lambda: _copy[config.blocks(n), config.THREADS](src, dst), repeats,
              cuda.synchronize)
    return 2 * n * 4 / t


def torch_cuda_missing():
    """Why PyTorch CUDA cannot be the reference here (a sentence), or None when it can."""
    try:
        import torch
    except ImportError:  # PyTorch is a benchmark reference only
        return "PyTorch is not installed: no PyTorch CUDA reference"
    if not torch.cuda.is_available():
        return (f"PyTorch {torch.__version__} sees no CUDA device: no PyTorch CUDA "
                f"reference")
    return None


def _torch_step(net, x, y, repeats, optimizer="sgd"):
    """Seconds per PyTorch CUDA training step of ``net`` on (x, y); None without it."""
    if torch_cuda_missing():
        return None
    import torch
    net = net.cuda()
    opt = (torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9) if optimizer == "sgd"
           else torch.optim.Adam(net.parameters(), lr=1e-3))
    tx, ty = torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(tx), ty)
        loss.backward()
        opt.step()
        return loss.item()  # fastnn's loss is a Python float too

    return _time(step, repeats, torch.cuda.synchronize)


def training_step(model, x, y, optimizer="sgd", device_batch=True):
    """A callable doing one training step of ``model`` (moved to the GPU) through the
    public API: fastnn.optim's SGD with momentum or Adam, nn.CrossEntropyLoss,
    ``model.backward``. x: (N, ...) inputs and y: (N,) int64 labels, NumPy arrays, copied
    to the device once when device_batch, else passed as they are at every step."""
    import fastnn
    model.to("cuda")
    opt = (fastnn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9) if optimizer == "sgd"
           else fastnn.optim.Adam(model.parameters(), lr=1e-3))
    loss_fn = fastnn.nn.CrossEntropyLoss()
    if device_batch:
        x, y = cuda.to_device(x), cuda.to_device(y)

    def step():
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        model.backward(loss_fn.backward(), need_grad_in=False)
        opt.step()
        return loss

    return step


def _layers_step(model, x, y, repeats, optimizer="sgd", gemm_paths=False):
    """Seconds per training step through the public API on the GPU (``training_step``
    with a device batch).

    gemm_paths: also time the step with cuBLAS reached through CuPy arrays instead of raw
    pointers (config.GEMM_DIRECT=0), alternating the two three times; returns
    (direct seconds, CuPy-array seconds) then, the medians of the three."""
    step = training_step(model, x, y, optimizer)
    if not gemm_paths:
        return _time(step, repeats, cuda.synchronize)
    direct, arrays = [], []
    raw = _gemm._raw_cublas
    for _ in range(3):
        direct.append(_time(step, repeats, cuda.synchronize))
        _gemm._raw_cublas = None
        try:
            arrays.append(_time(step, repeats, cuda.synchronize))
        finally:
            _gemm._raw_cublas = raw
    return statistics.median(direct), statistics.median(arrays)


def _numba_launch_step(model, x, y, repeats, optimizer="sgd"):
    """``_layers_step`` with every kernel launched through numba's dispatcher
    (config.LAUNCH = "numba"), as before launch.py."""
    saved = config.LAUNCH
    config.LAUNCH = "numba"
    try:
        return _layers_step(model, x, y, repeats, optimizer)
    finally:
        config.LAUNCH = saved


def _ratios(result):
    if result.get("torch_s"):
        for key in ("layers_s", "ops_s"):
            if result.get(key):
                result[key.replace("_s", "_ratio_to_torch")] = result[key] / result["torch_s"]
    return result


def mlp_step(sizes, batch, repeats, report=lambda result: None):
    """MLP training step (ReLU, softmax-CE, SGD with momentum): the public layer API on
    the GPU and PyTorch CUDA first, then the same step launched through numba, composed
    from the cuda ops, and its matrix products alone. ``report(result)`` gets the
    results so far after each measurement (a run stopped at its time limit keeps them)."""
    import fastnn
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    y = rng.integers(0, sizes[-1], batch)
    build = lambda: fastnn.models.MLP(sizes[0], list(sizes[1:-1]), sizes[-1])  # noqa: E731
    if _gemm._raw_cublas is not None:
        layers, arrays = _layers_step(build(), x, y, repeats, gemm_paths=True)
        result = {"layers_s": layers, "layers_cupy_arrays_s": arrays}
    else:
        result = {"layers_s": _layers_step(build(), x, y, repeats)}
    report(_ratios(result))

    def torch_net():
        import torch
        layers = []
        for i in range(len(sizes) - 1):
            layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(torch.nn.ReLU())
        return torch.nn.Sequential(*layers)

    missing = torch_cuda_missing()
    result["torch_s"] = None if missing else _torch_step(torch_net(), x, y, repeats)
    if missing:
        result["torch_missing"] = missing
    report(_ratios(result))
    result["layers_numba_launch_s"] = _numba_launch_step(build(), x, y, repeats)
    report(result)

    model = build().to("cuda")
    linears = [m for m in model.modules() if type(m).__name__ == "Linear"]
    opt = fastnn.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    dx, dy = cuda.to_device(x), cuda.to_device(y)

    def step():
        opt.zero_grad()
        acts = [dx]
        for i, lin in enumerate(linears):
            act = "identity" if i == len(linears) - 1 else "relu"
            acts.append(_dense.linear_forward(acts[-1], lin.weight.data, lin.bias.data, act))
        _, g = _losses.softmax_cross_entropy(acts[-1], dy)
        for i in range(len(linears) - 1, -1, -1):
            act = "identity" if i == len(linears) - 1 else "relu"
            g = _dense.linear_backward(g, acts[i], linears[i].weight.data, acts[i + 1], act,
                                       grad_weight=linears[i].weight.grad,
                                       grad_bias=linears[i].bias.grad, need_grad_in=i > 0)
        opt.step()

    result["ops_s"] = _time(step, repeats, cuda.synchronize)
    report(_ratios(result))

    # The step's eight matrix products alone (three forward, three weight gradients, two
    # input gradients: the first layer's is not needed), to tell the GEMMs' time from
    # everything around them.
    from .gemm import gemm
    widths = list(sizes)
    acts = [cuda.device_array((batch, w), np.float32) for w in widths]
    weights = [lin.weight.data for lin in linears]
    grads = [lin.weight.grad for lin in linears]

    def gemms():
        for i, w in enumerate(weights):
            gemm(acts[i], w, acts[i + 1], trans_b=True)
        for i in range(len(weights) - 1, -1, -1):
            gemm(acts[i + 1], acts[i], grads[i], trans_a=True, accumulate=True)
            if i > 0:
                gemm(acts[i + 1], weights[i], acts[i])

    result["gemms_s"] = _time(gemms, repeats, cuda.synchronize)
    report(result)
    if result["torch_s"] is not None:
        result["torch_gemms_s"] = _torch_gemms(widths, batch, repeats)
    return _ratios(result)


def _torch_gemms(widths, batch, repeats):
    """Seconds of mlp_step's eight matrix products in PyTorch CUDA."""
    import torch
    ta = [torch.randn(batch, w, device="cuda") for w in widths]
    tw = [torch.randn(widths[i + 1], widths[i], device="cuda")
          for i in range(len(widths) - 1)]
    tg = [torch.zeros_like(w) for w in tw]

    def torch_gemms():
        for i, w in enumerate(tw):
            torch.mm(ta[i], w.t(), out=ta[i + 1])
        for i in range(len(tw) - 1, -1, -1):
            tg[i].addmm_(ta[i + 1].t(), ta[i])
            if i > 0:
                torch.mm(ta[i + 1], tw[i], out=ta[i])

    return _time(torch_gemms, repeats, torch.cuda.synchronize)


def cnn_step(batch, repeats, input_size=28, channels=(32, 64), hidden=128):
    """SmallCNN training step with Adam (the course CNN) through the layer API, against
    the same network in PyTorch CUDA."""
    import fastnn
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 1, input_size, input_size)).astype(np.float32)
    y = rng.integers(0, 10, batch)
    model = fastnn.models.SmallCNN(input_size=input_size, channels=channels, hidden=hidden)
    result = {"layers_s": _layers_step(model, x, y, repeats, "adam")}
    model = fastnn.models.SmallCNN(input_size=input_size, channels=channels, hidden=hidden)
    result["layers_numba_launch_s"] = _numba_launch_step(model, x, y, repeats, "adam")
    missing = torch_cuda_missing()
    if missing:
        result.update(torch_s=None, torch_missing=missing)
    else:
        import torch

        def block(c_in, c_out):
            return [torch.nn.Conv2d(c_in, c_out, 3, padding=1), torch.nn.BatchNorm2d(c_out),
                    torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
        side = input_size // 4
        c1, c2 = channels
        net = torch.nn.Sequential(*block(1, c1), *block(c1, c2), torch.nn.Flatten(),
                                  torch.nn.Linear(c2 * side * side, hidden), torch.nn.ReLU(),
                                  torch.nn.Linear(hidden, 10))
        result["torch_s"] = _torch_step(net, x, y, repeats, "adam")
    return _ratios(result)


def softmax_ce_call(n, c):
    """A no-argument call of softmax-CE forward+backward on random (n, c) device logits."""
    rng = np.random.default_rng(0)
    logits = cuda.to_device(rng.standard_normal((n, c)).astype(np.float32))
    labels = cuda.to_device(rng.integers(0, c, n))
    grad = cuda.device_array((n, c), np.float32)
    return lambda: _losses.softmax_cross_entropy(logits, labels, grad)


def softmax_ce(n, c, repeats):
    t = _time(softmax_ce_call(n, c), repeats, cuda.synchronize)
    # the logits read, their gradient written, the int64 labels read (the CPU suite's
    # count, bench/cases.py)
    return {"seconds": t, "gb_per_s": (2 * n * c * 4 + 8 * n) / t / 1e9}


def batchnorm_call(n, c):
    """A no-argument call of BatchNorm1d forward (training) + backward on random (n, c)
    device arrays."""
    rng = np.random.default_rng(0)
    x = cuda.to_device(rng.standard_normal((n, c)).astype(np.float32))
    g = cuda.to_device(rng.standard_normal((n, c)).astype(np.float32))
    w, b = cuda.to_device(np.ones(c, np.float32)), cuda.to_device(np.zeros(c, np.float32))
    rm, rv = cuda.to_device(np.zeros(c, np.float32)), cuda.to_device(np.ones(c, np.float32))
    gw, gb = cuda.device_array(c, np.float32), cuda.device_array(c, np.float32)
    y, gin = cuda.device_array((n, c), np.float32), cuda.device_array((n, c), np.float32)
    mean, invstd = cuda.device_array(c, np.float32), cuda.device_array(c, np.float32)

    def fwd_bwd():
        _bn.batchnorm_forward(x, w, b, rm, rv, True, 0.1, 1e-5, False, y, mean, invstd)
        _bn.batchnorm_backward(g, x, w, mean, invstd, True, False, gw, gb, gin)

    return fwd_bwd


def batchnorm(n, c, repeats):
    t = _time(batchnorm_call(n, c), repeats, cuda.synchronize)
    # forward reads x, writes y; backward reads grad_out and x, writes grad_in
    return {"seconds": t, "gb_per_s": 5 * n * c * 4 / t / 1e9}


SECTIONS = ("mlp", "cnn", "bandwidth")


def _brief(value):
    """A measurement in a line: seconds as ms, ratios and fractions as they are."""
    if not isinstance(value, dict):
        return f"{value:.4g}" if isinstance(value, float) else str(value)
    parts = []
    for name, v in value.items():
        if isinstance(v, float) and (name == "seconds" or name.endswith("_s")
                                     and not name.endswith("per_s")):
            parts.append(f"{name.removesuffix('_s')} {v * 1e3:.3f} ms")
        elif isinstance(v, float):
            parts.append(f"{name} {v:.3g}")
        else:
            parts.append(f"{name} {v}")
    return ", ".join(parts)


def _sections(text):
    names = [name for name in text.split(",") if name]
    unknown = sorted(set(names) - set(SECTIONS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"sections are {', '.join(SECTIONS)}, comma-"
                                         f"separated; got {text!r}")
    return names


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes (smoke run)")
    parser.add_argument("--json", help="also write the results to this file (adding to "
                                       "the results it holds)")
    parser.add_argument("--sections", type=_sections, default=list(SECTIONS),
                        help=f"which to run, in this order (default: {','.join(SECTIONS)})")
    args = parser.parse_args(argv)
    quick = args.quick
    repeats = 3 if quick else 20
    results = {}
    if args.json:
        try:
            with open(args.json) as f:
                results = json.load(f)
        except (OSError, ValueError):  # none yet (or a run killed mid-write: start anew)
            results = {}
    results["backend"] = backend_info()

    def measured(key, value):
        """Keep a result and write the results so far (a run stopped at its time limit
        still leaves the sections it finished)."""
        if isinstance(value, dict) and "gb_per_s" in value:
            value["fraction_of_copy_bandwidth"] = (value["gb_per_s"] * 1e9
                                                   / (results["copy_gb_per_s"] * 1e9))
        results[key] = value
        if args.json:
            with open(args.json + ".tmp", "w") as f:
                f.write(json.dumps(results, indent=2) + "\n")
            os.replace(args.json + ".tmp", args.json)
        print(f"bench {key}: {_brief(value)}", flush=True)

    for section in args.sections:
        if section == "mlp":
            sizes, batch = ((8, 16, 16, 4), 4) if quick else ((784, 4096, 4096, 10), 1024)
            measured("mlp_step", mlp_step(sizes, batch, repeats,
                                          lambda partial: measured("mlp_step", partial)))
        elif section == "cnn":
            measured("cnn_step", cnn_step(2, repeats, 8, (2, 3), 4) if quick
                     else cnn_step(128, repeats))
        else:
            measured("copy_gb_per_s", copy_bandwidth(1 << 10 if quick else 1 << 26,
                                                     repeats) / 1e9)
            measured("softmax_ce", softmax_ce(*((6, 10) if quick else (4096, 1000)),
                                              repeats))
            if not quick:  # large enough that the kernels, not the launch path, take the time
                measured("softmax_ce_65536x1000", softmax_ce(65536, 1000, repeats))
                measured("batchnorm_65536x1024", batchnorm(65536, 1024, repeats))
            for n, c in ((4, 8),) if quick else ((256, 1024), (4096, 1024)):
                measured(f"batchnorm_{n}x{c}", batchnorm(n, c, repeats))
    return results


if __name__ == "__main__":
    main()
