"""``fastnn compile``: compile the numba backend's kernels ahead of their first use.

Numba compiles each kernel the first time it runs (seconds for the large ones, about
seven minutes of CPU for all of them on a 2-core EPYC) and keeps the machine code in its disk
cache, so this is paid once per install. ``fastnn compile`` pays it up front, on every
core: each op of the table runs once on small arrays of each float type, every kernel
compiling all its variants for those types (the parallel and streamed ones that large
arrays take too: ``config.compiling_every_variant``), one op family per process,
``--jobs`` processes at a time (the disk cache is locked for such processes:
``kernels/numba_cpu/cache_lock.py``). Afterwards, a fresh process runs any op from the
cache. ``make test`` runs it before the suite.
"""
import inspect
import os
import subprocess
import sys
import time

import numpy as np

from . import ops, optable

DTYPES = ("float32", "float64")

# Seconds each family took to compile (both float types, two at once on the 2-core
# EPYC, 4 Dec 2026): the longest families start first, so the processes end together.
FAMILY_SECONDS = {"activation": 146, "conv": 120, "batchnorm": 36, "optim": 32,
                  "dense": 27, "loss": 22, "layernorm": 13, "dropout": 6}


def _dense(rng, dt):
    x, w, b = rng.standard_normal((6, 5), dt), rng.standard_normal((4, 5), dt), np.zeros(4, dt)
    for act in optable.FUSABLE_ACTIVATIONS:
        y = ops.linear_forward(x, w, b, activation=act)
        g = np.ones_like(y)
        ops.linear_backward(g, x, w, y, activation=act, grad_weight=np.zeros_like(w),
                            grad_bias=np.zeros_like(b), accumulate=act != "relu")
        ops.linear_backward(g, x, w, y, activation=act, need_grad_in=False)
    # a short batch of a wide layer: the forward that computes the transpose
    ops.linear_forward(rng.standard_normal((2, 5), dt), rng.standard_normal((2048, 5), dt))


def _activation(rng, dt):
    x = rng.standard_normal((3, 8), dt)
    g = np.ones_like(x)
    for name in optable.OP_FAMILIES["activation"]:
        if name.endswith("_backward"):
            continue
        y = getattr(ops, name)(x)
        backward = getattr(ops, name + "_backward")
        # the backward reads the output (relu, sigmoid, tanh, softmax) or the input
        saved = y if "y" in inspect.signature(backward).parameters else x
        backward(g, saved)


def _dropout(rng, dt):
    x = rng.standard_normal((4, 6), dt)
    y, mask = ops.dropout_forward(x, 0.5, 7)
    ops.dropout_backward(np.ones_like(y), mask)


def _loss(rng, dt):
    logits = rng.standard_normal((5, 4), dt)
    ops.softmax_cross_entropy(logits, np.arange(5, dtype=np.int64) % 4)
    ops.softmax_cross_entropy(logits, np.full((5, 4), 0.25, dt))
    probs = np.full((5, 4), 0.5, dt)
    for name in ("mse_loss", "bce_loss", "bce_with_logits_loss", "smooth_l1_loss"):
        getattr(ops, name)(probs if name == "bce_loss" else logits, probs)


def _batchnorm(rng, dt):
    for shape in ((6, 3), (2, 3, 4, 4)):
        x = rng.standard_normal(shape, dt)
        g = np.ones_like(x)
        for mean_only in (False, True):
            weight = None if mean_only else np.ones(3, dt)
            running_var = None if mean_only else np.ones(3, dt)
            for training in (True, False):
                y, mean, invstd = ops.batchnorm_forward(
                    x, weight, np.zeros(3, dt), np.zeros(3, dt), running_var,
                    training=training, mean_only=mean_only)
                ops.batchnorm_backward(
                    g, x, weight, mean, invstd, training=training, mean_only=mean_only,
                    grad_weight=None if mean_only else np.zeros(3, dt),
                    grad_bias=np.zeros(3, dt))
                ops.batchnorm_backward(g, x, weight, mean, invstd, training=training,
                                       mean_only=mean_only)


def _layernorm(rng, dt):
    x = rng.standard_normal((4, 6), dt)
    for weight, bias in ((np.ones(6, dt), np.zeros(6, dt)), (None, None)):
        y, mean, invstd = ops.layer_norm_forward(x, weight, bias)
        grads = (np.zeros(6, dt), np.zeros(6, dt)) if weight is not None else (None, None)
        ops.layer_norm_backward(np.ones_like(y), x, weight, mean, invstd, *grads)


def _conv(rng, dt):
    x = rng.standard_normal((2, 3, 6, 6), dt)
    w = rng.standard_normal((4, 3, 3, 3), dt)
    for bias in (np.zeros(4, dt), None):
        y = ops.conv2d_forward(x, w, bias, stride=(1, 1), padding=(1, 1))
        ops.conv2d_backward(np.ones_like(y), x, w, (1, 1), (1, 1), grad_weight=np.zeros_like(w),
                            grad_bias=np.zeros(4, dt))
        ops.conv2d_backward(np.ones_like(y), x, w, (1, 1), (1, 1), need_grad_in=True)
    dw = rng.standard_normal((3, 1, 3, 3), dt)
    for stride in ((1, 1), (2, 2)):
        y = ops.depthwise_conv2d_forward(x, dw, np.zeros(3, dt), stride, (1, 1))
        ops.depthwise_conv2d_backward(np.ones_like(y), x, dw, stride, (1, 1),
                                      grad_weight=np.zeros_like(dw), grad_bias=np.zeros(3, dt))
        ops.depthwise_conv2d_backward(np.ones_like(y), x, dw, stride, (1, 1),
                                      need_grad_in=False, grad_weight=np.zeros_like(dw))
    # (2x2 stride 2 and 3x3 stride 2 and 1 max pools take kernels of their own, 2x2 stride
    # 1 the general one; 2x2 stride 2 and 3x3 stride 2 average pools theirs, 3x3 stride 3
    # the tiling ones, 3x3 stride 1 the general ones)
    for kernel, stride, padding in (((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)),
                                    ((3, 3), (1, 1), (1, 1)), ((2, 2), (1, 1), (0, 0))):
        y, indices = ops.max_pool2d_forward(x, kernel, stride, padding)
        ops.max_pool2d_backward(np.ones_like(y), indices, x.shape)
    for kernel, stride, padding in (((2, 2), (2, 2), (0, 0)), ((3, 3), (3, 3), (0, 0)),
                                    ((3, 3), (2, 2), (1, 1)), ((3, 3), (1, 1), (1, 1))):
        y = ops.avg_pool2d_forward(x, kernel, stride, padding)
        ops.avg_pool2d_backward(np.ones_like(y), x.shape, kernel, stride, padding)


def _optim(rng, dt):
    def arrays(k):
        return [rng.standard_normal(10, dt) for _ in range(k)]
    p, g, v = arrays(3)
    ops.sgd_update(p, g, None, 0.1)
    ops.sgd_update(p, g, v, 0.1, momentum=0.9, weight_decay=0.01, nesterov=True)
    p, g, m, s, mx = arrays(5)
    s, mx = abs(s), abs(mx)
    ops.adam_update(p, g, m, s, 1)
    ops.adam_update(p, g, m, s, 2, weight_decay=0.01, max_exp_avg_sq=mx)
    ops.adaptive_moments_update(p, g, m, s, 0.01, grad_rate=0.001)
    p, g, sq, mb, ga = arrays(5)
    sq = abs(sq)
    ops.rmsprop_update(p, g, sq)
    ops.rmsprop_update(p, g, sq, momentum=0.9, momentum_buffer=mb, grad_avg=ga)
    p, g, acc = arrays(3)
    ops.adagrad_update(p, g, abs(acc))
    p, g, m, inf = arrays(4)
    ops.adamax_update(p, g, m, abs(inf), 1)
    p, g, sq, delta = arrays(4)
    ops.adadelta_update(p, g, abs(sq), abs(delta))
    p, g, prev = arrays(3)
    ops.rprop_update(p, g, prev, np.full(10, 0.01, dt))
    p, g, ax = arrays(3)
    ops.asgd_update(p, g, ax, 0.01, 1.0)


EXERCISES = {"dense": _dense, "activation": _activation, "dropout": _dropout, "loss": _loss,
             "batchnorm": _batchnorm, "layernorm": _layernorm, "conv": _conv,
             "optim": _optim}


def compile_family(family, dtypes=DTYPES):
    """Run family's exercise on the numba backend, every variant of each kernel
    compiled (or loaded from the disk cache) for each dtype, in this process."""
    import fastnn
    from .kernels.numba_cpu import config
    rng = np.random.default_rng(0)
    with fastnn.use_backend("numba"), config.compiling_every_variant(), \
            np.errstate(all="ignore"):
        for dt in dtypes:
            EXERCISES[family](rng, np.dtype(dt))


def compile_all(jobs=None, families=None, log=print):
    """Compile every family in its own process, ``jobs`` at a time (default: the CPUs
    this process may use). Returns the exit status (0, or the first failure's)."""
    families = list(families or EXERCISES)
    families.sort(key=lambda f: -FAMILY_SECONDS.get(f, 0))
    if jobs is None:
        jobs = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                else os.cpu_count() or 1)
    waiting, running, status, start = list(families), {}, 0, time.perf_counter()
    while waiting or running:
        while waiting and len(running) < jobs:
            family = waiting.pop(0)
            running[family] = subprocess.Popen(
                [sys.executable, "-m", "fastnn", "compile", "--family", family])
        for family, proc in list(running.items()):
            code = proc.poll()
            if code is None:
                continue
            del running[family]
            log(f"compiled {family} ({time.perf_counter() - start:.0f} s)"
                if code == 0 else f"compiling {family} failed (exit status {code})")
            status = status or code
        time.sleep(0.05)
    return status


def add_arguments(parser):
    parser.add_argument("--jobs", "-j", type=int, default=None,
                        help="processes compiling at once (default: the CPUs available)")
    parser.add_argument("--family", choices=sorted(EXERCISES), action="append",
                        help="compile only this op family in this process (repeatable)")


def run(args):
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"compile: expected --jobs >= 1, got {args.jobs}")
    import fastnn
    if "numba" not in fastnn.backends():
        print("the numba backend is not available here: nothing to compile")
        return 0
    if args.family:
        for family in args.family:
            compile_family(family)
        return 0
    return compile_all(args.jobs)
