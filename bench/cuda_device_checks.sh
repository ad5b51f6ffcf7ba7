#!/bin/bash
# Issue 7's checks on a real GPU, in one call of the workplace's device tool:
#
#   run(command="bash bench/cuda_device_checks.sh", carry=[".gpudata"], timeout_s=600)
#
# The device machine's python3 already has numba (with numba-cuda), CuPy, PyTorch CUDA,
# pytest and hypothesis; fastnn runs from the source tree (no pip install: the Cython
# extensions are not needed there). Fashion-MNIST's IDX files travel in .gpudata/
# (ignored by git; copy them from /usr/share/datasets/fashion-mnist first).
#
# The whole script keeps to FASTNN_GPU_BUDGET seconds (default 540, under the tool's
# 600-second limit a command): each stage has its own time limit, cut to what is left of
# the budget, and a stage with too little left is skipped (its log says so). Stages run
# most-needed first: the correctness checks (kernels and launches never run on a GPU yet
# fail there first), then the training runs, then the timings. Every stage's log goes
# into $OUT/logs.tgz as soon as the stage ends (the tool brings back at most 8 files, and
# what a command killed at its limit left under $OUT), so a slow or failing stage still
# leaves the others' results. $OUT ends with gpu.txt, the JSON results and logs.tgz.
set -u
OUT=${OUT:-/tmp/fastnn-gpu}
BUDGET=${FASTNN_GPU_BUDGET:-540}
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
stage() {  # stage NAME SECONDS COMMAND...: run with a limit, log to $LOGS/NAME.log
    local name=$1 limit=$2 left status
    shift 2
    left=$(( BUDGET - $(elapsed) - 10 ))  # 10 s kept for the archive and the summary
    if (( left < 20 )); then
        echo "=== $name: skipped, ${left}s of the ${BUDGET}s budget left" | tee "$LOGS/$name.log"
        archive
        return
    fi
    (( limit > left )) && limit=$left
    echo "=== $name (limit ${limit}s, at $(elapsed)s)"
    timeout -k 5 "$limit" "$@" >"$LOGS/$name.log" 2>&1
    status=$?
    (( status == 124 || status == 137 )) && status="$status (stopped at its ${limit}s limit)"
    echo "=== $name: exit $status after $(elapsed)s" | tee -a "$LOGS/$name.log"
    tail -n 5 "$LOGS/$name.log" | head -n 4
    archive
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm \
    --format=csv >"$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
timeout -k 5 120 python3 - >>"$OUT/gpu.txt" 2>&1 <<'PY'
import importlib.metadata as md
for name in ("numba", "numba-cuda", "cupy-cuda13x", "torch", "numpy", "pytest"):
    try:
        print(name, md.version(name))
    except md.PackageNotFoundError:
        print(name, "absent")
import fastnn
print("backends", fastnn.backends())
print("cuda", fastnn.backend_info("cuda"))
PY
tail -n 8 "$OUT/gpu.txt"

# check mode: besides their values, every direct kernel launch (kernels/cuda/launch.py) is
# compared with numba's typing and marshalling of its arguments. (The H200 run of
# 2026-11-28 ran 137 + 231 of these tests; they are 318 + 426 since, untimed on a GPU:
# --durations says where the time goes.)
stage tests 150 env FASTNN_CUDA_LAUNCH=check python3 -m pytest -q -p no:cacheprovider \
    --maxfail=20 --durations=10 tests/test_cuda_ops.py tests/test_cuda_modules.py tests/test_cuda_sim.py \
    -k "not simulator"
stage conformance 120 python3 -m pytest -q -p no:cacheprovider --maxfail=20 --durations=10 \
    tests/test_conformance.py -k cuda
stage train_mlp 75 python3 -m fastnn train --backend cuda --dataset fashion-mnist \
    --data-root .gpudata --epochs 5 --no-progress --metrics "$OUT/train_mlp.json"
stage train_cnn 100 python3 -m fastnn train --backend cuda --model cnn --dataset fashion-mnist \
    --data-root .gpudata --optimizer adam --lr 1e-3 --lr-schedule cosine --standardize \
    --batch-size 128 --epochs 4 --no-progress --metrics "$OUT/train_cnn.json"
stage bench 150 python3 -m fastnn.kernels.cuda.bench --json "$OUT/cuda_bench.json"
# the kernels alone (the bench times whole op calls): Nsight Compute where it runs
if command -v ncu >/dev/null; then
    stage ncu 90 ncu --clock-control none --launch-skip 8 --launch-count 8 \
        --section SpeedOfLight --section Occupancy --section LaunchStats \
        python3 bench/cuda_ncu_cases.py
    grep -E "^  [a-z_]+::|Duration|DRAM Throughput|Registers Per|Achieved Occupancy" \
        "$LOGS/ncu.log" | sed -E 's/\[v[0-9]+,[^]]*\]//; s/\(Array.*\) \(/ (/'
fi
echo "=== done after $(elapsed)s"
archive
