"""Issue 7's GPU numbers in BENCHMARKS.md: rendered from ``bench/results/cuda_gpu.json``.

CI and ``make bench`` have no GPU, so the CUDA numbers come from the last run of
``bench/cuda_device_checks.sh`` on a lent GPU (``python -m fastnn.kernels.cuda.bench``
plus two training runs), saved by hand into that file with the device, the software
versions and the date; ``make bench`` re-renders them unchanged.
"""
import json
import os

CUDA_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                         "cuda_gpu.json")
#: host time of CUDA training steps on the stand-in driver (bench/fake_cuda/host_time.py,
#: run by hand: ``python -m bench.fake_cuda.host_time --json`` plus the fields below)
HOST_JSON = os.path.join(os.path.dirname(CUDA_JSON), "cuda_host.json")

#: issue 7's limits: MLP step ratio to PyTorch CUDA, fraction of copy bandwidth
MLP_RATIO_LIMIT = 1.5
BANDWIDTH_FRACTION = 0.5


def load(path=CUDA_JSON):
    """The saved GPU results, or None when no GPU run was saved."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def _ms(seconds):
    return f"{seconds * 1e3:.2f} ms"


def _verdict(ok):
    return "pass" if ok else "**FAIL**"


def section(results):
    """Markdown lines of the CUDA section (empty when results is None)."""
    if not results:
        return []
    bench = results["bench"]
    copy = bench["copy_gb_per_s"]
    mlp, cnn = bench["mlp_step"], bench["cnn_step"]
    out = ["## CUDA (on a lent GPU)", "",
           f"Device: **{results['device']}**; {results['software']}. Measured "
           f"{results['measured']}; medians of 20 steps after 3 warm-ups, the device "
           f"synchronised in each. Copy bandwidth of a grid-stride copy kernel: "
           f"{copy:,.0f} GB/s (read + write).", "",
           "| case | fastnn | PyTorch CUDA | ratio | issue 7 |", "|---|---|---|---|---|"]
    out.append(f"| MLP 784-4096-4096-10 ReLU step, batch 1024, SGD momentum, layer API "
               f"(`model.to('cuda')`, `fastnn.optim`) | {_ms(mlp['layers_s'])} | "
               f"{_ms(mlp['torch_s'])} | {mlp['layers_ratio_to_torch']:.2f}x | "
               f"{_verdict(mlp['layers_ratio_to_torch'] <= MLP_RATIO_LIMIT)} (<= "
               f"{MLP_RATIO_LIMIT}x) |")
    if mlp.get("layers_numba_launch_s"):
        ratio = mlp["layers_numba_launch_s"] / mlp["torch_s"]
        out.append(f"| same, every kernel launched through numba's dispatcher "
                   f"(`FASTNN_CUDA_LAUNCH=numba`) | {_ms(mlp['layers_numba_launch_s'])} | "
                   f"{_ms(mlp['torch_s'])} | {ratio:.2f}x | |")
    out.append(f"| same step composed from the cuda ops (fresh outputs each op) | "
               f"{_ms(mlp['ops_s'])} | {_ms(mlp['torch_s'])} | "
               f"{mlp['ops_ratio_to_torch']:.2f}x | |")
    if mlp.get("gemms_s") and mlp.get("torch_gemms_s"):
        out.append(f"| that step's eight matrix products alone (cuBLAS through CuPy / "
                   f"torch.mm) | {_ms(mlp['gemms_s'])} | {_ms(mlp['torch_gemms_s'])} | "
                   f"{mlp['gemms_s'] / mlp['torch_gemms_s']:.2f}x | |")
    out.append(f"| SmallCNN step, batch 128, Adam, layer API | {_ms(cnn['layers_s'])} | "
               f"{_ms(cnn['torch_s'])} | {cnn['layers_ratio_to_torch']:.2f}x | |")
    if cnn.get("layers_numba_launch_s"):
        out.append(f"| same, launched through numba's dispatcher | "
                   f"{_ms(cnn['layers_numba_launch_s'])} | {_ms(cnn['torch_s'])} | "
                   f"{cnn['layers_numba_launch_s'] / cnn['torch_s']:.2f}x | |")
    out += ["", "| kernel | time | GB/s moved | of copy bandwidth | issue 7 (>= 50%) |",
            "|---|---|---|---|---|"]
    for key, label in (("softmax_ce", "softmax-CE fwd+bwd 4096x1000"),
                       ("softmax_ce_65536x1000", "softmax-CE fwd+bwd 65536x1000"),
                       ("batchnorm_256x1024", "BatchNorm1d fwd+bwd 256x1024"),
                       ("batchnorm_4096x1024", "BatchNorm1d fwd+bwd 4096x1024"),
                       ("batchnorm_65536x1024", "BatchNorm1d fwd+bwd 65536x1024")):
        row = bench.get(key)
        if row is None:  # sizes added after an earlier saved run
            continue
        fraction = row["fraction_of_copy_bandwidth"]
        out.append(f"| {label} | {_ms(row['seconds'])} | {row['gb_per_s']:.0f} | "
                   f"{fraction:.1%} | {_verdict(fraction >= BANDWIDTH_FRACTION)} |")
    out += ["", "| training on Fashion-MNIST | test accuracy | seconds per epoch |",
            "|---|---|---|"]
    for key in ("train_mlp", "train_cnn"):
        run = results[key]
        out.append(f"| `{run['command']}` | {run['test_accuracy']:.4f} | "
                   f"{', '.join(f'{s:.2f}' for s in run['seconds_per_epoch'])} |")
    out += [""] + [f"- {name}: {text}" for name, text in results["tests"].items()] + [""]
    return out


_HOST_CASES = (("mlp", "MLP 784-4096-4096-10 step, batch 1024, SGD momentum, device batch"),
               ("mlp_host_batch", "same, NumPy batches"),
               ("cnn", "SmallCNN step, batch 128, Adam, device batch"))


def host_section(results):
    """Markdown lines of the host-time subsection (empty when results is None):
    results["cases"] and, when saved, results["before"]["cases"] to compare with (an
    earlier commit, or another way of launching named by results["before"]["label"]),
    each {case: {"host_us", "per_step": {counter: count}}}; results["numba_cuda"], when
    saved, the same measured on numba-cuda, in a second table."""
    if not results:
        return []
    out = ["### Host time of a step, without a GPU", "",
           f"Measured {results['measured']} on {results['machine']} "
           f"({results['software']}) by `python -m bench.fake_cuda.host_time`: the steps "
           "above through numba's real CUDA path on a stand-in driver "
           "(`bench/fake_cuda/driver.c`: device memory in host memory, launches that do "
           "nothing), so a step's time is its host time alone: the launches, "
           "fastnn's staging and checks, the driver calls. On a GPU a step takes at least "
           "this long. Fastest of 15 blocks of 10 steps; counts per step from the "
           "driver's counters.", ""]
    out += _host_table(results)
    other = results.get("numba_cuda")
    if other:
        out += ["", f"The same on {other['software']}, measured {other['measured']}:", ""]
        out += _host_table(other)
    return out + [""] + [f"- {line}" for line in results.get("notes", [])] + [""]


def _host_table(results):
    before = (results.get("before") or {}).get("cases", {})
    head = "| case | host time a step |"
    if before:
        head += f" {results['before'].get('label') or 'at ' + results['before']['commit']} |"
    out = [head + " launches | allocations | copies in / out / on device |",
           "|---|---|" + ("---|" if before else "") + "---|---|---|"]
    for key, label in _HOST_CASES:
        row = results["cases"].get(key)
        if row is None:
            continue
        n = row["per_step"]
        cells = f"| {label} | {row['host_us'] / 1e3:.2f} ms |"
        if before:
            old = before.get(key)
            cells += f" {old['host_us'] / 1e3:.2f} ms |" if old else " |"
        out.append(cells + f" {n['launches']:g} | {n['allocs']:g} | {n['htod']:g} / "
                   f"{n['dtoh']:g} / {n['dtod']:g} |")
    return out
