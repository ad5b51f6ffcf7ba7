"""Host time and driver calls of CUDA training steps, on the stand-in driver.

    python -m bench.fake_cuda.host_time [--small] [--repeats N] [--json out.json]
                                        [--launch direct|numba|check]

Builds the stand-in driver (bench/fake_cuda/driver.c) and runs itself in a new process
that loads it. Each case is a training step through the public API (``model.to("cuda")``,
``fastnn.optim``, ``nn.CrossEntropyLoss``, ``model.backward``), timed after warm-up
steps (compilation excluded) as the fastest of ``repeats`` blocks of steps, with the
driver's counts per step:

* ``mlp``: MLP 784-4096-4096-10, ReLU, batch 1024, SGD with momentum, the batch a device
  array (issue 7's step; ``--small``: 784-64-64-10, batch 32);
* ``mlp_host_batch``: the same with NumPy batches (copied in by the model and the loss);
* ``cnn``: SmallCNN, batch 128, Adam, a device batch (``--small``: channels (4, 8),
  hidden 16, batch 4).

The counts include ``direct_launches`` and ``numba_launches``: launches through the
driver directly and through numba's dispatcher (kernels/cuda/launch.py; ``--launch numba``
sends every one through numba, as before that module). ``one_launch``: the host time of
one launch of the SGD kernel both ways.

No kernel runs on the stand-in driver, so the times are the host's share of a step:
the launches (numba's typing and marshalling of their arguments on a first launch, the
driver calls), fastnn's staging and checks. On a GPU a step takes at least this long, and
this long exactly where the host cannot run ahead of the GPU (after each synchronising
copy: the labels' check, the loss).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _cases(small):
    import fastnn
    if small:
        return {"mlp": (lambda: fastnn.models.MLP(784, [64, 64], 10), (32, 784), "sgd"),
                "cnn": (lambda: fastnn.models.SmallCNN(channels=(4, 8), hidden=16),
                        (4, 1, 28, 28), "adam")}
    return {"mlp": (lambda: fastnn.models.MLP(784, [4096, 4096], 10), (1024, 784), "sgd"),
            "cnn": (lambda: fastnn.models.SmallCNN(), (128, 1, 28, 28), "adam")}


def measure(small, repeats, block=10, warmup=3):
    """{case: {"host_us": fastest step, "per_step": {counter: count}}} in this process,
    which must have loaded the stand-in driver."""
    import numpy as np
    from numba import cuda

    from fastnn.kernels.cuda.bench import training_step

    from . import Counters
    counters = Counters(os.environ["NUMBA_CUDA_DRIVER"])
    results = {}
    cases = _cases(small)
    runs = [("mlp", cases["mlp"], True), ("mlp_host_batch", cases["mlp"], False),
            ("cnn", cases["cnn"], True)]
    rng = np.random.default_rng(0)
    for name, (make_model, shape, optimizer), device_batch in runs:
        x = rng.standard_normal(shape).astype(np.float32)
        y = rng.integers(0, 10, shape[0])
        step = training_step(make_model(), x, y, optimizer, device_batch)
        for _ in range(warmup):
            step()
        before = dict(counters.snapshot(), **_launch_counts())
        for _ in range(block):
            step()
        after = dict(counters.snapshot(), **_launch_counts())
        per_step = {k: (after[k] - before[k]) / block for k in after}
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(block):
                step()
            cuda.synchronize()
            times.append((time.perf_counter() - start) / block)
        results[name] = {"host_us": round(min(times) * 1e6, 1), "per_step": per_step}
    return results


def launch_cost(repeats, calls=2000):
    """{"direct_us", "numba_us"}: host time of one launch of the SGD kernel (3 device
    arrays of 4096 float32, 6 scalars), through launch.py and through numba's
    dispatcher, the fastest of ``repeats`` blocks of ``calls``."""
    import numpy as np
    from numba import cuda

    from fastnn.kernels.cuda import optim
    arrays = [cuda.device_array(4096, np.float32) for _ in range(3)]
    args = (*arrays, True, 0.01, 0.9, 0.0, False, 1.0)
    out = {}
    for name, kernel in (("direct", optim._sgd), ("numba", optim._sgd.dispatcher)):
        kernel[16, 256](*args)  # compiled, and its direct launch prepared
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(calls):
                kernel[16, 256](*args)
            best = min(best, (time.perf_counter() - start) / calls)
        out[f"{name}_us"] = round(best * 1e6, 2)
    return out


def _launch_counts():
    from fastnn.kernels.cuda import launch
    return {"direct_launches": launch.counts["direct"],
            "numba_launches": launch.counts["numba"]}


def run(small=False, repeats=5, directory=None, launch=None):
    """Build the stand-in driver and measure in a new process: the results of
    ``measure``, or None without a C compiler or without CUDA's libNVVM. launch: the
    process's FASTNN_CUDA_LAUNCH (kernels/cuda/launch.py), when given."""
    process = command(small, repeats, directory, launch)
    if process is None:
        return None
    args, env = process
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=1200)
    if proc.returncode and proc.returncode != 77:
        raise RuntimeError(f"host_time failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    return results(proc.returncode, proc.stdout)


def command(small=False, repeats=5, directory=None, launch=None):
    """Build the stand-in driver: (python's arguments, environment) of ``run``'s
    measuring process (to run in ROOT), or None without a C compiler."""
    from . import build, environment
    directory = directory or os.path.join(tempfile.gettempdir(), "fastnn-fake-cuda")
    path = build(directory)
    if path is None:
        return None
    env = dict(os.environ, **environment(path))
    if launch is not None:
        env["FASTNN_CUDA_LAUNCH"] = launch
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    args = ["-m", "bench.fake_cuda.host_time", "--in-process",
            "--repeats", str(repeats)] + (["--small"] if small else [])
    return args, env


def results(returncode, output):
    """The results of ``measure`` from a successful measuring process's exit status and
    output (the last line of it that starts with '{', which may follow its warnings on
    stderr), or None where it found no libNVVM (status 77)."""
    if returncode == 77:
        return None
    return json.loads([line for line in output.splitlines() if line.startswith("{")][-1])


def _has_nvvm():
    try:
        from numba.cuda.cudadrv.nvvm import NVVM
        NVVM()
    except Exception:  # noqa: BLE001 - any failure to load libNVVM: nothing compiles
        return False
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", action="store_true", help="small models (a smoke run)")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--launch", choices=("direct", "numba", "check"),
                        help="how kernels launch (FASTNN_CUDA_LAUNCH)")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.in_process:
        if not _has_nvvm():
            print("CUDA's libNVVM is not available: numba cannot compile kernels")
            sys.exit(77)
        results = measure(args.small, args.repeats)
        results["one_launch"] = launch_cost(args.repeats)
        print(json.dumps(results))
        return
    results = run(args.small, args.repeats, launch=args.launch)
    if results is None:
        sys.exit("needs a C compiler and CUDA's libNVVM")
    one = results.pop("one_launch")
    for name, r in results.items():
        counts = ", ".join(f"{k} {v:g}" for k, v in r["per_step"].items())
        print(f"{name:16s} {r['host_us']:8.0f} us a step   ({counts})")
    print(f"one launch of the SGD kernel (3 arrays, 6 scalars): {one['direct_us']} us, "
          f"{one['numba_us']} us through numba's dispatcher")
    if args.json:
        results["one_launch"] = one
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
