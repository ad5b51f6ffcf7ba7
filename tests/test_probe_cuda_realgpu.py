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
STAGES = ("tests", "conformance", "train_mlp", "train_cnn", "bench")


def _run_script(tmp_path, budget):
    """Run the check script in a scratch tree with stand-in commands that print their
    arguments; returns (stdout, $OUT)."""
    stubs = tmp_path / "stubs"
    stubs.mkdir()
    for name in ("python3", "nvidia-smi"):
        stub = stubs / name
        stub.write_text("#!/bin/sh\necho \"stub $0 $*\"\n")
        stub.chmod(0o755)
    work = tmp_path / "work"
    (work / "fastnn").mkdir(parents=True)
    out = tmp_path / "out"
    env = {"PATH": f"{stubs}:/usr/bin:/bin", "OUT": str(out), "HOME": str(tmp_path),
           "FASTNN_GPU_BUDGET": str(budget), "TMPDIR": str(tmp_path)}
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
    assert set(limits) == set(STAGES), stdout
    # each stage gets at most what is left of the budget, less the archive's reserve
    assert all(limit <= 90 for limit in limits.values()), limits
    # the device tool brings back at most 8 files: the logs travel as one archive
    assert len(list(out.iterdir())) <= 8, sorted(p.name for p in out.iterdir())
    logs = _logs(out)
    assert {f"{name}.log" for name in STAGES} <= set(logs), sorted(logs)
    assert "-m pytest" in logs["tests.log"] and "exit 0" in logs["tests.log"], logs


def test_gpu_checks_skip_the_stages_the_budget_has_no_time_for(tmp_path):
    stdout, out = _run_script(tmp_path, budget=0)
    assert "(limit" not in stdout, stdout
    logs = _logs(out)
    for name in STAGES:
        assert "skipped" in logs[f"{name}.log"], logs
