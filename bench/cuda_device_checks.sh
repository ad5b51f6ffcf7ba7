#!/bin/bash
# Issue 7's checks on a real GPU, in one call of the workplace's device tool:
#
#   run(command="bash bench/cuda_device_checks.sh", carry=[".gpudata"], timeout_s=580)
#
# The device machine's python3 already has numba (with numba-cuda), CuPy, PyTorch CUDA,
# pytest and hypothesis; fastnn runs from the source tree (no pip install: the Cython
# extensions are not needed there). Fashion-MNIST's IDX files travel in .gpudata/
# (ignored by git; copy them from /usr/share/datasets/fashion-mnist first).
# Each stage has its own time limit and writes its log under $OUT, so a slow or failing
# stage still leaves the others' results. Stages run most-needed first. $OUT ends with
# gpu.txt, the JSON results and logs.tgz (every stage's log).
set -u
OUT=${OUT:-/tmp/fastnn-gpu}
mkdir -p "$OUT"
# The device image's numba-cuda still registers np.row_stack, which its NumPy (2.5) no
# longer has: a sitecustomize on the path restores the alias before numba imports.
SHIM=$(mktemp -d)
printf 'import numpy\nif not hasattr(numpy, "row_stack"):\n    numpy.row_stack = numpy.vstack\n' \
    >"$SHIM/sitecustomize.py"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:$SHIM
ln -sfn ../kernels fastnn/kernels
START=$(date +%s)
stage() {  # stage NAME SECONDS COMMAND...: run with a limit, log to $OUT/NAME.log
    local name=$1 limit=$2
    shift 2
    echo "=== $name (limit ${limit}s, at $(( $(date +%s) - START ))s)"
    timeout "$limit" "$@" >"$OUT/$name.log" 2>&1
    echo "=== $name: exit $? after $(( $(date +%s) - START ))s"
    tail -n 4 "$OUT/$name.log"
}

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm \
    --format=csv >"$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
python3 - >>"$OUT/gpu.txt" 2>&1 <<'EOF'
import importlib.metadata as md
for name in ("numba", "numba-cuda", "cupy-cuda13x", "torch", "numpy", "pytest"):
    try:
        print(name, md.version(name))
    except md.PackageNotFoundError:
        print(name, "absent")
import fastnn
print("backends", fastnn.backends())
print("cuda", fastnn.backend_info("cuda"))
EOF
tail -n 8 "$OUT/gpu.txt"

stage bench 150 python3 -m fastnn.kernels.cuda.bench --json "$OUT/cuda_bench.json"
# the kernels alone (the bench times whole op calls): Nsight Compute where it runs
if command -v ncu >/dev/null; then
    stage ncu 90 ncu --clock-control none --launch-skip 8 --launch-count 8 \
        --section SpeedOfLight --section Occupancy --section LaunchStats \
        python3 bench/cuda_ncu_cases.py
    grep -E "^  [a-z_]+::|Duration|DRAM Throughput|Registers Per|Achieved Occupancy" \
        "$OUT/ncu.log" | sed -E 's/\[v[0-9]+,[^]]*\]//; s/\(Array.*\) \(/ (/'
fi
stage train_mlp 75 python3 -m fastnn train --backend cuda --dataset fashion-mnist \
    --data-root .gpudata --epochs 5 --no-progress --metrics "$OUT/train_mlp.json"
stage train_cnn 120 python3 -m fastnn train --backend cuda --model cnn --dataset fashion-mnist \
    --data-root .gpudata --optimizer adam --lr 1e-3 --lr-schedule cosine --standardize \
    --batch-size 128 --epochs 4 --no-progress --metrics "$OUT/train_cnn.json"
# check mode: besides their values, every direct kernel launch (kernels/cuda/launch.py) is
# compared with numba's typing and marshalling of its arguments
stage tests 150 env FASTNN_CUDA_LAUNCH=check python3 -m pytest -q -p no:cacheprovider \
    tests/test_cuda_ops.py tests/test_cuda_modules.py tests/test_cuda_sim.py -k "not simulator"
stage conformance 110 python3 -m pytest -q -p no:cacheprovider -x tests/test_conformance.py \
    -k cuda
echo "=== done after $(( $(date +%s) - START ))s"
# the device tool brings back at most 8 files: the logs travel as one archive
(cd "$OUT" && tar czf logs.tgz ./*.log && rm -f ./*.log)
