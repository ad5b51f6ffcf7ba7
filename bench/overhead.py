"""Interleaved ratios for the issues' relative targets.

Issue 2: the numpy backend's MLP step against the student NumPy loop. Issues 3, 4 and
5: each compiled backend's MLP steps, BatchNorm1d 256x1024 forward+backward, softmax-CE
4096x1000, Conv2d and MaxPool2d forward+backward against PyTorch in the same process,
and each elementwise kernel on 16M float32 values (activations, dropout, pointwise
losses) against the memory-copy ceiling (its share of the copy bandwidth of the same
moment).

pytest-benchmark times one contender after the other, so slow drift of the machine (other
virtual machines, frequency changes) lands on one side of the ratio: on this 2-core
virtual machine two suite runs minutes apart moved single rows by 2x. Here the two sides
run in alternating blocks, and the ratio is the median of the per-block ratios: drift hits
both alike. Warm-up calls come first and are not timed.
"""
import json
import os
import sys
import time

import numpy as np

from . import steps

OVERHEAD_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                             "overhead.json")
VS_TORCH_JSON = os.path.join(os.path.dirname(OVERHEAD_JSON), "vs_torch.json")
BANDWIDTH_JSON = os.path.join(os.path.dirname(OVERHEAD_JSON), "bandwidth.json")
BATCHNORM_TARGET = "BatchNorm1d 256x1024 forward+backward"
SOFTMAX_CE_TARGET = "softmax-CE 4096x1000"
CONV_TARGET = "Conv2d 32x64x16x16->128 3x3 pad 1 forward+backward"
POOL_TARGET = "MaxPool2d 3x3/2 pad 1 on 32x64x16x16 forward+backward"
# target -> the suite's (op, size) case it times
CASE_TARGETS = {BATCHNORM_TARGET: ("batchnorm_forward+batchnorm_backward", "large"),
                SOFTMAX_CE_TARGET: ("softmax_cross_entropy", "large"),
                CONV_TARGET: ("conv2d_forward+conv2d_backward", "large"),
                POOL_TARGET: ("max_pool2d_forward+max_pool2d_backward", "large")}


def _block_seconds(fn, calls):
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def interleaved_ratio(first, second, blocks=15, block_time=0.05):
    """(median seconds of first, of second, median of second/first over blocks)."""
    for fn in (first, second):
        fn()
        fn()
    per_call = max(_block_seconds(first, 3), 1e-6)
    calls = max(1, int(block_time / per_call))
    a, b = [], []
    for _ in range(blocks):
        a.append(_block_seconds(first, calls))
        b.append(_block_seconds(second, calls))
    ratios = np.array(b) / np.array(a)
    return float(np.median(a)), float(np.median(b)), float(np.median(ratios))


def checked(make, what):
    """``make()``, a pair of callables each checked as the suite checks it before timing
    (steps.checked_mlp_step, Case.checked_call), or None where a check raises
    AssertionError, said on stderr. An interleaved ratio decides its target's verdict
    over the suite's row, so a pair whose results differ from the reference's is left
    out, as the suite fails its benchmark, not timed as a fast one."""
    try:
        return make()
    except AssertionError as err:
        reason = "; ".join([line.strip() for line in str(err).splitlines() if line.strip()][:3])
        print(f"bench.overhead: {what} not timed interleaved: {reason}", file=sys.stderr)
        return None


def measure(configs=None, blocks=15):
    """{config: {'student': s, 'numpy': s, 'ratio': numpy/student, 'blocks': n}}; a
    config whose student loop trains otherwise than the numpy backend is left out."""
    import fastnn

    from . import contenders
    contenders.set_threads(contenders.all_threads())   # (as the other measurements)
    results = {}
    for config, (sizes, activation, batch) in (configs or steps.MLP_CONFIGS).items():
        student = checked(lambda: steps.checked_mlp_step("student", sizes, activation,
                                                         batch, config), f"{config}: student")
        if student is None:
            continue
        with fastnn.use_backend("numpy"):
            numpy_step = steps.mlp_step("numpy", sizes, activation, batch)
            s, n, ratio = interleaved_ratio(student, numpy_step, blocks=blocks)
        results[config] = {"student": s, "numpy": n, "ratio": ratio, "blocks": blocks,
                           "threads": fastnn.get_num_threads()}
    return results


def measure_vs_torch(backends, blocks=15):
    """{backend: {target: {'torch': s, 'fastnn': s, 'ratio': fastnn/torch, 'blocks': n}}}
    for issues 3, 4 and 5: every MLP step config and the cases of CASE_TARGETS, each
    pair checked first as the suite checks it (a pair that fails is left out)."""
    import fastnn
    from fastnn import backend

    from . import cases, contenders
    contenders.set_threads(contenders.all_threads())
    results = {}
    for name in backends:
        be = backend.load(name)
        pairs = {config: checked(lambda: (steps.checked_mlp_step("torch", *spec, config),
                                          steps.checked_mlp_step(name, *spec, config)),
                                 f"{config}: {name}")
                 for config, spec in steps.MLP_CONFIGS.items()}
        for target in CASE_TARGETS:
            case = cases.get_case(*CASE_TARGETS[target])
            pairs[target] = checked(lambda: (case.checked_call("torch"),
                                             case.checked_call(name, be)), f"{target}: {name}")
        results[name] = {}
        for target, pair in pairs.items():
            if pair is None:   # (a check failed: said on stderr)
                continue
            t, f, ratio = interleaved_ratio(*pair, blocks=blocks)
            results[name][target] = {"torch": t, "fastnn": f, "ratio": ratio,
                                     "blocks": blocks, "threads": fastnn.get_num_threads()}
    return results


#: the op families of issues 3 and 4's "elementwise kernels on 16M float32 values":
#: the activations and dropout (its mask and its backward), forward and backward
ELEMENTWISE_FAMILIES = ("activation", "dropout")
#: the pointwise losses, each its loss and its gradient in one pass over 16M float32
#: values (pred and target read, the gradient written), held to the same share since
#: their kernels reach it (BCE had two logs a value summed at float64 width, 22-45%)
POINTWISE_LOSSES = ("mse_loss", "bce_loss", "bce_with_logits_loss", "smooth_l1_loss")


def is_elementwise(op, family, size):
    """Whether the case (op, family, size) is one of the elementwise kernels on 16M
    float32 values that issues 3 and 4 hold to 70% of the copy bandwidth (not the
    row-wise (log-)softmaxes, 4096x1000, nor softmax cross-entropy): the activations,
    dropout and the pointwise losses."""
    if size != "large" or "softmax" in op:
        return False
    return family in ELEMENTWISE_FAMILIES or (family == "loss" and op in POINTWISE_LOSSES)


def elementwise_cases():
    """The suite's elementwise cases at 16M float32 values (is_elementwise): the ops
    issues 3 and 4 hold to 70% of the copy bandwidth."""
    from . import cases
    return [c for c in cases.all_cases() if is_elementwise(c.op, c.family, c.size)
            and c.bytes]


def measure_bandwidth(backends, blocks=15):
    """{backend: {op: {'fraction', 'op_s', 'copy_s', 'blocks', 'threads'}}}: each
    elementwise op timed in blocks alternating with the copy ceiling (bench/ceilings.py's
    Numba copy of 256 MB), fraction = the median over blocks of (op bytes / op time) /
    (copy bytes / copy time): the machine's bandwidth of that moment is the reference, so
    drift between the ceiling's measurement and the op's does not move the result."""
    import fastnn
    from fastnn import backend

    from . import ceilings, contenders
    contenders.set_threads(contenders.all_threads())
    copy, copy_bytes = ceilings.copy_runner()
    results = {}
    for name in backends:
        be = backend.load(name)
        results[name] = {}
        for case in elementwise_cases():
            copy_s, op_s, ratio = interleaved_ratio(copy, case.fastnn(be), blocks=blocks)
            results[name][case.op] = {"fraction": case.bytes / copy_bytes / ratio,
                                      "op_s": op_s, "copy_s": copy_s, "blocks": blocks,
                                      "threads": fastnn.get_num_threads()}
    return results


def save(results, path=OVERHEAD_JSON):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(results, f, indent=2)


def load(path=OVERHEAD_JSON):
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)
