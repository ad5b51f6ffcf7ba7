#!/bin/bash
# Issue 7's checks on a real GPU, in one call of the workplace's device tool. First, here
# (copies Fashion-MNIST's IDX files into .gpudata/, which git ignores):
#
#   bash bench/cuda_device_checks.sh --prepare
#   run(command="bash bench/cuda_device_checks.sh", carry=[".gpudata"], timeout_s=600)
#
# then give_back at once (a warm machine's idle time counts too): a machine's start (a
# few minutes) and this run take about 10 to 12 of a session's 15 minutes of device
# time, which leaves none for a second try.
#
# The device machine's python3 (Python 3.12) already has numba with numba-cuda, CuPy,
# PyTorch CUDA, pytest (with pytest-timeout), hypothesis and scikit-learn, and nothing can
# be fetched there; fastnn runs from the source tree (no pip install: the Cython
# extensions are not needed there). Without .gpudata the training stages say so and
# are skipped.
#
# The whole script keeps to FASTNN_GPU_BUDGET seconds (default 540: a machine's start
# and this run fit a session's 15 minutes of device time, and one command's 10): each
# stage has its own time limit, cut to what is left of the budget, and a stage with too
# little left is skipped (its log says so). Stages run most-needed first: the
# conformance suite, the MLP step against PyTorch CUDA, the softmax-CE and BatchNorm
# bandwidths, the two Fashion-MNIST trainings, then the cuda suites in launch-check
# mode, the SmallCNN step and Nsight Compute. Each result reaches $OUT as soon as it is
# known: summary.txt gets a line a stage (its exit status, time and result lines), the
# bench's JSON is rewritten after each measurement, and every stage's log goes into
# $OUT/logs.tgz when the stage ends (the tool brings back at most 8 files, and what a
# command killed at its limit left under $OUT). $OUT ends with gpu.txt, summary.txt,
# logs.tgz, cuda_bench.json, train_mlp.json and train_cnn.json.
#
# Before the stages, bench/cuda_smoke.py picks the launch and cuBLAS paths that work.
#
# FASTNN_GPU_QUICK=1: a dry run of the plumbing in a minute or two (a few tests a suite,
# tiny bench sizes, a few training steps), e.g. here on the stand-in driver of
# bench/fake_cuda with stand-in python3 and nvidia-smi on the PATH.
set -u
if [[ ${1:-} == --prepare ]]; then
    mkdir -p .gpudata && cp /usr/share/datasets/fashion-mnist/*-ubyte* .gpudata/ &&
        ls -l .gpudata
    exit
fi
OUT=${OUT:-/tmp/fastnn-gpu}
BUDGET=${FASTNN_GPU_BUDGET:-540}
QUICK=${FASTNN_GPU_QUICK:-0}
mkdir -p "$OUT"
LOGS=$(mktemp -d)
# The device image's numba-cuda still registers np.row_stack, which its NumPy (2.5) no
# longer has: a sitecustomize on the path restores the alias before numba imports.
SHIM=$(mktemp -d)
printf 'import numpy\nif not hasattr(numpy, "row_stack"):\n    numpy.row_stack = numpy.vstack\n' \
    >"$SHIM/sitecustomize.py"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:$SHIM
ln -sfn ../kernels fastnn/kernels
START=$(date +%s)
elapsed() { echo $(( $(date +%s) - START )); }
archive() {  # every log so far into $OUT/logs.tgz (replaced whole, never half-written)
    tar czf "$OUT/.logs.tgz" -C "$LOGS" . && mv -f "$OUT/.logs.tgz" "$OUT/logs.tgz"
}
note() {  # a line of summary.txt (and of this command's output)
    echo "$*" | tee -a "$OUT/summary.txt"
}
RESULT_LINES="(passed|failed|errors?|skipped|deselected)(,| in [0-9.]+s)|^epoch |"
RESULT_LINES+="^test accuracy|^bench |^[A-Za-z_.]*(Error|Exception|Interrupt)\b"
stage() {  # stage NAME SECONDS COMMAND...: run with a limit, log to $LOGS/NAME.log
    local name=$1 limit=$2 left status began
    shift 2
    left=$(( BUDGET - $(elapsed) - 10 ))  # 10 s kept for the archive and the summary
    if (( left < 20 )); then
        echo "=== $name: skipped, ${left}s of the ${BUDGET}s budget left" | tee "$LOGS/$name.log"
        note "$name: skipped (${left}s of the budget left)"
        archive
        return
    fi
    (( limit > left )) && limit=$left
    began=$(elapsed)
    echo "=== $name (limit ${limit}s, at ${began}s)"
    timeout -k 5 "$limit" "$@" >"$LOGS/$name.log" 2>&1
    status=$?
    (( status == 124 || status == 137 )) && status="$status (stopped at its ${limit}s limit)"
    echo "=== $name: exit $status after $(elapsed)s" | tee -a "$LOGS/$name.log"
    note "$name: exit $status, $(( $(elapsed) - began ))s of ${limit}s"
    # the result lines: pytest's first failures and its counts, the epochs and the test
    # accuracy, the bench's measurements (the last line of each), an uncaught error
    {
        grep -E "^(FAILED|ERROR) " "$LOGS/$name.log" | head -n 4
        grep -E "$RESULT_LINES" "$LOGS/$name.log" | tac | awk '!seen[$1 " " $2]++' | tac |
            tail -n 8
    } | cut -c 1-300 | sed 's/^/    /' | tee -a "$OUT/summary.txt"
    archive
}
skip() {  # skip NAME REASON
    echo "=== $1: skipped: $2" >"$LOGS/$1.log"
    note "$1: skipped: $2"
}

# the machine and its software, at once
: >"$OUT/summary.txt"
timeout -k 5 30 nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm \
    --format=csv >"$OUT/gpu.txt" 2>&1
timeout -k 5 90 python3 - >>"$OUT/gpu.txt" 2>&1 <<'PY'
import importlib.metadata as md
import sys
print("python", sys.version.split()[0], sys.executable)
for name in ("numba", "numba-cuda", "cupy-cuda13x", "cupy-cuda12x", "torch", "numpy", "pytest",
             "pytest-timeout", "hypothesis", "scikit-learn"):
    try:
        print(name, md.version(name))
    except md.PackageNotFoundError:
        print(name, "absent")
try:
    import torch
    print("torch cuda", torch.cuda.is_available(), torch.version.cuda)
except ImportError:
    print("torch absent: the bench has no PyTorch CUDA reference")
import fastnn
print("backends", fastnn.backends())
print("cuda", fastnn.backend_info("cuda"))
PY
cat "$OUT/gpu.txt"
note "setup: $(elapsed)s (gpu.txt)"
grep -E "^(backends|torch cuda|numba|numba-cuda|cupy-cuda1[23]x|python) |Error" "$OUT/gpu.txt" | cut -c 1-300 |
    sed 's/^/    /' | tee -a "$OUT/summary.txt"

# which launch and cuBLAS paths work here (bench/cuda_smoke.py: a few ops checked against
# NumPy): the stages run with the first setting that passes, so that a fast path broken
# on this GPU costs its own stage, not the session (the suites stage still checks the
# direct launches)
SMOKE=(python3 bench/cuda_smoke.py)
[[ $QUICK == 1 ]] && SMOKE+=(--no-values)
SMOKED=0
for setting in "" FASTNN_CUDA_GEMM_DIRECT=0 \
               "FASTNN_CUDA_GEMM_DIRECT=0 FASTNN_CUDA_LAUNCH=numba"; do
    echo "=== smoke with ${setting:-the defaults}" >>"$LOGS/smoke.log"
    # shellcheck disable=SC2086  # (the setting's words are separate variables)
    if timeout -k 5 45 env $setting "${SMOKE[@]}" >>"$LOGS/smoke.log" 2>&1; then
        # shellcheck disable=SC2086
        [[ -n $setting ]] && export $setting
        note "smoke: passed with ${setting:-the defaults} after $(elapsed)s"
        tail -n 1 "$LOGS/smoke.log" | cut -c 1-300 | sed 's/^/    /' | tee -a "$OUT/summary.txt"
        SMOKED=1
        break
    fi
done
(( SMOKED )) ||
    note "smoke: failed with every setting (logs.tgz: smoke.log); the stages run with the defaults"
archive

PYTEST=(python3 -m pytest -p no:cacheprovider -v -rfE --tb=short --maxfail=20 --durations=10)
# pytest-timeout, where installed (the device image has it): a test hung on the GPU (in
# a driver call, where no signal gets through) ends its stage at once with every thread's
# stack printed, rather than at the stage's limit; -v names each test as it starts
python3 -c "import pytest_timeout" 2>/dev/null && PYTEST+=(--timeout=90 -o timeout_method=thread)
BENCH=(python3 -m fastnn.kernels.cuda.bench --json "$OUT/cuda_bench.json")
TRAIN=(python3 -m fastnn train --backend cuda --dataset fashion-mnist --data-root .gpudata
       --no-progress)
CONFORMANCE_K=cuda
SUITES_K="not simulator"
if [[ $QUICK == 1 ]]; then
    CONFORMANCE_K="cuda and relu"
    SUITES_K="not simulator and (relu or sgd)"
    BENCH+=(--quick)
    TRAIN+=(--max-steps 20)
fi

# 1. the shared conformance suite on the GPU (428 cases with -k cuda)
stage conformance 150 "${PYTEST[@]}" tests/test_conformance.py -k "$CONFORMANCE_K"
# 2. the MLP 784-4096-4096-10 step at batch 1024 against PyTorch CUDA (the bench says when
#    PyTorch CUDA is missing), then the softmax-CE and BatchNorm bandwidths
stage bench_mlp 90 "${BENCH[@]}" --sections mlp
stage bench_bandwidth 60 "${BENCH[@]}" --sections bandwidth
# 3. Fashion-MNIST end to end, with test accuracy
if ls .gpudata/train-images-idx3-ubyte* >/dev/null 2>&1; then
    stage train_mlp 60 "${TRAIN[@]}" --epochs 5 --metrics "$OUT/train_mlp.json"
    stage train_cnn 90 "${TRAIN[@]}" --model cnn --optimizer adam --lr 1e-3 \
        --lr-schedule cosine --standardize --batch-size 128 --epochs 4 \
        --metrics "$OUT/train_cnn.json"
else
    for name in train_mlp train_cnn; do
        skip $name "no Fashion-MNIST in .gpudata (bash bench/cuda_device_checks.sh --prepare, \
then carry .gpudata)"
    done
fi
# 4. the cuda suites, every direct kernel launch (kernels/cuda/launch.py) compared with
#    numba's typing and marshalling of its arguments (check mode)
stage suites 150 env FASTNN_CUDA_LAUNCH=check "${PYTEST[@]}" tests/test_cuda_ops.py \
    tests/test_cuda_modules.py tests/test_cuda_sim.py -k "$SUITES_K"
# 5. the SmallCNN step against PyTorch CUDA
stage bench_cnn 60 "${BENCH[@]}" --sections cnn
# 6. the kernels alone (the bench times whole op calls): Nsight Compute where it runs
if command -v ncu >/dev/null && [[ $QUICK != 1 ]]; then
    stage ncu 90 ncu --clock-control none --launch-skip 8 --launch-count 8 \
        --section SpeedOfLight --section Occupancy --section LaunchStats \
        python3 bench/cuda_ncu_cases.py
    grep -E "^  [a-z_]+::|Duration|DRAM Throughput|Registers Per|Achieved Occupancy" \
        "$LOGS/ncu.log" | sed -E 's/\[v[0-9]+,[^]]*\]//; s/\(Array.*\) \(/ (/'
else
    skip ncu "no ncu on the PATH, or a quick run"
fi
note "done after $(elapsed)s"
archive
