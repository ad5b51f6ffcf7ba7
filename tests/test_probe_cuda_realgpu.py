"""What a real GPU would meet that the simulator cannot show: the GPU check script's time
budget and what it brings back (bench/cuda_device_checks.sh, run with stand-in python3
and nvidia-smi), and the launch sizes of the default configuration against the limits of
a GPU."""
import os
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "cuda_device_checks.sh"
# in the order they run: the most needed first
STAGES = ("conformance", "bench_mlp", "bench_bandwidth", "train_mlp", "train_cnn", "suites",
          "bench_cnn")


_STUB = "#!/bin/sh\necho \"stub $0 $* launch=$FASTNN_CUDA_LAUNCH\"\n"


def _run_script(tmp_path, budget, data=True, python=_STUB, **env):
    """Run the check script in a scratch tree with stand-in commands that print their
    arguments (python3: the shell script ``python``; Fashion-MNIST's files in .gpudata
    when data); returns (stdout, $OUT)."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name, text in (("python3", python), ("nvidia-smi", _STUB)):
        stub = stubs / name
        stub.write_text(text)
        stub.chmod(0o755)
    work = tmp_path / "work"
    (work / "fastnn").mkdir(parents=True)
    if data:
        (work / ".gpudata").mkdir()
        (work / ".gpudata" / "train-images-idx3-ubyte.gz").write_bytes(b"")
    out = tmp_path / "out"
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "OUT": str(out), "HOME": str(tmp_path),
           "FASTNN_GPU_BUDGET": str(budget), "TMPDIR": str(tmp_path), **env}
    proc = subprocess.run(["bash", str(SCRIPT)], cwd=work, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout, out


def _logs(out):
    with tarfile.open(out / "logs.tgz") as tar:
        return {os.path.basename(m.name): tar.extractfile(m).read().decode()
                for m in tar.getmembers() if m.isfile()}


def test_gpu_checks_keep_every_stage_limit_inside_the_budget(tmp_path):
    stdout, out = _run_script(tmp_path, budget=100)
    limits = {name: int(limit) for name, limit in
              re.findall(r"=== (\w+) \(limit (\d+)s", stdout)}
    assert tuple(limits) == STAGES, stdout
    # each stage gets at most what is left of the budget, less the archive's reserve
    assert all(limit <= 90 for limit in limits.values()), limits
    # the device tool brings back at most 8 files: the logs travel as one archive
    assert len(list(out.iterdir())) <= 8, sorted(p.name for p in out.iterdir())
    logs = _logs(out)
    assert {f"{name}.log" for name in STAGES} <= set(logs), sorted(logs)
    assert "-m pytest" in logs["conformance.log"] and "exit 0" in logs["conformance.log"]
    # the suites in launch-check mode, the conformance suite as users run it
    assert "launch=check" in logs["suites.log"], logs["suites.log"]
    assert "launch=check" not in logs["conformance.log"], logs["conformance.log"]
    assert "--sections mlp" in logs["bench_mlp.log"], logs["bench_mlp.log"]
    # a line a stage in summary.txt, written as each stage ends
    summary = (out / "summary.txt").read_text()
    assert [line.split(":")[0] for line in summary.splitlines()
            if line.split(":")[0] in STAGES] == list(STAGES), summary


def test_gpu_checks_without_the_data_skip_the_trainings_and_say_why(tmp_path):
    stdout, out = _run_script(tmp_path, budget=100, data=False)
    limits = re.findall(r"=== (\w+) \(limit", stdout)
    assert "train_mlp" not in limits and "suites" in limits, stdout
    summary = (out / "summary.txt").read_text()
    assert "train_cnn: skipped: no Fashion-MNIST in .gpudata" in summary, summary
    assert "--prepare" in _logs(out)["train_mlp.log"]


def test_gpu_checks_quick_run_takes_small_sizes(tmp_path):
    _, out = _run_script(tmp_path, budget=100, FASTNN_GPU_QUICK="1")
    logs = _logs(out)
    assert "--quick" in logs["bench_mlp.log"] and "--max-steps" in logs["train_cnn.log"]
    assert "cuda and relu" in logs["conformance.log"], logs["conformance.log"]


def test_gpu_checks_skip_the_stages_the_budget_has_no_time_for(tmp_path):
    stdout, out = _run_script(tmp_path, budget=0)
    assert "(limit" not in stdout, stdout
    logs = _logs(out)
    for name in STAGES:
        assert "skipped" in logs[f"{name}.log"], logs


def test_gpu_checks_fall_back_to_the_launch_path_that_works(tmp_path):
    """A smoke run (bench/cuda_smoke.py) that fails with the direct launches makes every
    stage launch through numba, and the summary says so; the suites stage still checks
    the direct launches."""
    python = ("#!/bin/sh\n"
              "case \"$*\" in *cuda_smoke*) [ \"$FASTNN_CUDA_LAUNCH\" = numba ] || exit 1;; esac\n"
              + _STUB.split("\n", 1)[1])
    _, out = _run_script(tmp_path, budget=100, python=python)
    summary = (out / "summary.txt").read_text()
    assert "smoke: passed with FASTNN_CUDA_GEMM_DIRECT=0 FASTNN_CUDA_LAUNCH=numba" in summary
    logs = _logs(out)
    assert logs["smoke.log"].count("=== smoke with") == 3, logs["smoke.log"]
    assert "launch=numba" in logs["conformance.log"] and "launch=numba" in logs["bench_mlp.log"]
    assert "launch=check" in logs["suites.log"], logs["suites.log"]
