"""Run the benchmark suite and write BENCHMARKS.md: ``python -m bench.report`` (make bench).

Steps: pytest-benchmark runs ``bench/`` with ``--benchmark-json`` (the run the report
reads, kept in bench/results/latest.json) and ``--benchmark-autosave`` (numbered runs
under .benchmarks/, for ``pytest-benchmark compare``); then the report renders tables,
the issues' targets and the scaling plots (bench/results/*.png).

  python -m bench.report                  run everything, write BENCHMARKS.md
  python -m bench.report --no-run         re-render from bench/results/latest.json
  python -m bench.report -k "mlp_step"    run a subset (pytest -k) into a folder of its
                                          own, bench/results/subset/ (its BENCHMARKS.md:
                                          those rows alone), leaving the full run's alone
  python -m bench.report --dry-run --json /tmp/d.json --output /tmp/D.md
                                          one round each: does everything run? (without
                                          --json: into a temporary folder, never over
                                          the committed results)

What a run measures besides the suite (the interleaved ratios: overhead.json,
vs_torch.json, bandwidth.json; the floors of two targets: floors.json), the list of
benchmarks that did not run (not_run.json) and the plots are kept in the folder of
--json: bench/results by default, so a dry run or a render with --json elsewhere leaves
the committed results alone. A full run measures those interleaved files anew (one it
cannot measure, PyTorch's ratios without PyTorch, is removed, not left from an earlier
run); a subset run measures none of them, so its report has the suite's rows only.
"""
import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile

from . import cuda_results
from . import floors as floor_results
from . import overhead as overhead_results
from . import results_io
from .reasons import REASONS
from .plots import make_plots
from .results_io import Ceilings, index
# (in timing.py: the quick table, which the wheel ships without report.py, uses them)
from .timing import fmt_ratio, fmt_time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
LATEST = os.path.join(RESULTS, "latest.json")
SUBSET = os.path.join(RESULTS, "subset")   # where a -k run goes unless --json says
NOT_RUN = os.path.join(RESULTS, "not_run.json")

# Each order puts the reference first and PyTorch last.
ORDER = ("numpy", "numba", "cython", "cuda", "student", "torch")



# ------------------------------------------------------------------------ running
def run_outputs(path):
    """Whether a repository path is one a benchmark run writes itself (bench/results/,
    BENCHMARKS.md): not a change to the code measured."""
    return path.startswith("bench/results/") or path == "BENCHMARKS.md"


def source_changed(root=ROOT):
    """Whether tracked files other than a run's own outputs differ from HEAD (None
    outside a git checkout). pytest-benchmark's commit_info 'dirty' is taken at the end
    of the session, when the run has rewritten its results files, which marked every
    run of a clean checkout as one with uncommitted changes."""
    try:
        out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                             cwd=root, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    paths = [line[3:].split(" -> ")[-1] for line in out.splitlines() if line.strip()]
    return any(not run_outputs(path) for path in paths)


def run_suite(json_path=LATEST, keyword=None, extra_args=(), not_run=NOT_RUN, save=True):
    """Run bench/ under pytest-benchmark; returns pytest's exit status. not_run: where
    the benchmarks that were skipped are listed; save: also keep the run under
    .benchmarks/ for ``pytest-benchmark compare`` (full runs only: not a dry run's
    meaningless numbers, nor a -k subset, which BENCHMARKS.md's compare advice does
    not expect among its numbered runs)."""
    os.makedirs(os.path.dirname(json_path), exist_ok=True)
    cmd = [sys.executable, "-m", "pytest", os.path.join(ROOT, "bench"), "-q", "-rs",
           "-p", "no:cacheprovider", f"--benchmark-json={json_path}",
           "--benchmark-columns=median,iqr,rounds", "--benchmark-sort=name"]
    if save:
        cmd.append("--benchmark-autosave")
    if keyword:
        cmd += ["-k", keyword]
    cmd += list(extra_args)
    env = dict(os.environ, FASTNN_BENCH_NOT_RUN=not_run,
               PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    print("running:", " ".join(cmd), flush=True)
    changed = source_changed()   # (before the run rewrites its outputs)
    status = subprocess.call(cmd, cwd=ROOT, env=env)
    if changed is not None and os.path.exists(json_path):
        data = results_io.load_json(json_path)
        if isinstance(data.get("commit_info"), dict):
            data["commit_info"]["dirty"] = changed
            with open(json_path, "w") as f:
                json.dump(data, f, indent=4)
    return status


# ----------------------------------------------------------------------- formatting
def _ordered(contenders):
    return sorted(contenders, key=lambda c: (ORDER.index(c) if c in ORDER else len(ORDER), c))


def _table(header, body):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in body]
    return "\n".join(lines)


def _median(entry, contender):
    row = entry.get(contender)
    return row["median"] if row else None


def _speedup(entry, contender):
    base, t = _median(entry, "numpy"), _median(entry, contender)
    return base / t if base and t else None


def _vs_torch(entry, contender):
    ref, t = _median(entry, "torch"), _median(entry, contender)
    return t / ref if ref and t else None


#: a median more than this many times the fastest round: rounds that spread this far
#: (another process, descheduling, a thread pool waking up) make the median say more
#: about the moment than about the code; such medians are marked in the tables
DISTURBED = 3.0


def _disturbed(row):
    return row.get("min") and row["median"] > DISTURBED * row["min"]


def comparison_table(table, ceilings, keys=None, label="case"):
    """Rows per (case, contender): median, speed-up over numpy, ratio to torch, achieved.
    A disturbed median (see DISTURBED) is marked with its fastest round."""
    header = [label, "shape", "contender", "median", "speed-up vs numpy", "time / PyTorch",
              "achieved", "% of ceiling"]
    body = []
    for key in keys or list(table):
        entry = table.get(key)
        if not entry:
            continue
        for contender in _ordered(entry):
            row = entry[contender]
            achieved, pct = ceilings.achieved(row)
            body.append([key[0] + (f" [{key[1]}]" if key[1] and label == "op" else ""),
                         row.get("shape", ""), contender,
                         fmt_time(row["median"])
                         + (f" (rounds spread: fastest {fmt_time(row['min'])})"
                            if _disturbed(row) else ""),
                         fmt_ratio(_speedup(entry, contender)),
                         fmt_ratio(_vs_torch(entry, contender)), achieved,
                         "—" if pct is None else f"{pct:.0f}%"])
    return _table(header, body)


# --------------------------------------------------------------------------- targets
def _against(value, limit):
    """fmt_ratio, with a third decimal where two would read as the limit itself (1.0031
    shown as 1.00x next to its FAIL for "at most 1.0x")."""
    if value is not None and value != limit and f"{value:.2f}" == f"{limit:.2f}":
        return f"{value:.3f}x"
    return fmt_ratio(value)


def _check(value, limit, higher_is_better=False):
    if value is None:
        return "not measured"
    ok = value >= limit if higher_is_better else value <= limit
    return "**pass**" if ok else "**FAIL**"


def _spread_note(entry, *contenders):
    """' (rounds spread)' when a sequential median a verdict was taken from is disturbed
    (see DISTURBED): a loaded machine's medians (a subset run beside other work gave
    the 784-100-10 step 0.0046x PyTorch, and 'pass'). Interleaved verdicts need none."""
    rows = [(entry or {}).get(c) for c in contenders]
    return " (rounds spread)" if any(r and _disturbed(r) for r in rows) else ""


def _floor_note(floors, key, field, label):
    """' (label: the floor)' from bench/floors.py's results, or '' when not measured."""
    value = (floors or {}).get(key, {}).get(field)
    return "" if value is None else f" ({label}: {value:.2f}x)"


def targets(all_rows, ceilings, overhead=None, vs_torch=None, bandwidth=None, floors=None):
    """The issues' speed targets evaluated on this run: [(issue, target, who, value, verdict)].

    overhead, vs_torch, bandwidth: bench/overhead.py's interleaved ratios; where one is
    given it decides the row (marked 'interleaved'), else the suite's sequential medians
    do. floors: bench/floors.py's results, added to the verdicts they bound."""
    steps = index(all_rows, "step")
    ops = index(all_rows, "op")
    out = []

    def step(config):
        return next((v for (op, _), v in steps.items() if op == config), {})

    for config in ("mlp 784-100-10 relu b128", "mlp 784-1024-1024-10 leaky b32",
                   "mlp 784-1024-1024-10 leaky b256"):
        spread = ""
        if config in (overhead or {}):  # interleaved timing: see bench/overhead.py
            value, how = overhead[config]["ratio"], " (interleaved)"
        else:
            entry = step(config)
            s, n = _median(entry, "student"), _median(entry, "numpy")
            value, how = (n / s if s and n else None), ""
            spread = _spread_note(entry, "student", "numpy")
        out.append(("2", f"{config}: numpy backend ≤ 1.3x the student NumPy loop{how}",
                    "numpy", _against(value, 1.3), _check(value, 1.3) + spread))
    compiled = [c for c in ("numba", "cython") if any(c in e for e in ops.values())]
    limits = {"mlp 784-1024-1024-10 leaky b256": 1.0, "mlp 784-1024-1024-10 leaky b32": 0.8,
              "mlp 784-100-10 relu b128": 0.7}
    for c in compiled:
        issue = "3" if c == "numba" else "4"
        interleaved = (vs_torch or {}).get(c, {})

        def versus_torch(target, sequential):
            if target in interleaved:
                return interleaved[target]["ratio"], " (interleaved)", ""
            return _vs_torch(sequential, c), "", _spread_note(sequential, c, "torch")

        for config, limit in limits.items():
            value, how, spread = versus_torch(config, step(config))
            out.append((issue, f"{config} step ≤ {limit}x PyTorch{how}", c,
                        _against(value, limit), _check(value, limit) + spread))
        value, how, spread = versus_torch(
            overhead_results.BATCHNORM_TARGET,
            ops.get(("batchnorm_forward+batchnorm_backward", "large"), {}))
        out.append((issue, f"BatchNorm1d 256x1024 forward+backward ≤ 0.3x PyTorch{how}", c,
                    _against(value, 0.3), _check(value, 0.3) + spread
                    + _floor_note(floors, "batchnorm", "ratio",
                                  "its memory passes alone, interleaved")))
        value, how, spread = versus_torch(overhead_results.SOFTMAX_CE_TARGET,
                                          ops.get(("softmax_cross_entropy", "large"), {}))
        out.append((issue, f"softmax-CE 4096x1000 ≤ 1.0x PyTorch{how}", c,
                    _against(value, 1.0), _check(value, 1.0) + spread))
        for (op, size), entry in ops.items():
            row = entry.get(c)
            # the activations, dropout and the pointwise losses; (log-)softmax and
            # softmax-CE are row-wise, 4096x1000
            if not row or not overhead_results.is_elementwise(op, row.get("family"), size) \
                    or not row.get("bytes"):
                continue
            measured = (bandwidth or {}).get(c, {}).get(op)
            spread = ""
            if measured:   # interleaved with the copy: see bench/overhead.py
                pct, how = 100 * measured["fraction"], " (interleaved)"
            else:
                (_, pct), how = ceilings.achieved(row), ""
                spread = _spread_note(entry, c)
            out.append((issue, f"{op} 16M float32 ≥ 70% of copy bandwidth{how}", c,
                        "—" if pct is None else f"{pct:.0f}%",
                        _check(pct, 70, higher_is_better=True) + spread))
        for op in ("linear_forward", "linear_backward", "softmax_cross_entropy",
                   "batchnorm_forward", "batchnorm_backward", "sgd_update", "adam_update",
                   "rmsprop_update"):
            entry = ops.get((op, "large"), {})
            value = _speedup(entry, c)
            out.append((issue, f"fused {op} (large) ≥ 2x faster than the NumPy reference", c,
                        _against(value, 2.0), _check(value, 2.0, higher_is_better=True)
                        + _spread_note(entry, c, "numpy") + _floor_note(floors, op, "bound",
                                      "its products alone, interleaved")))
    # issue 5's targets are the compiled backends' (the reference is what they beat)
    for c in [c for c in ORDER if c not in ("numpy", "student", "torch")]:
        if c not in ops.get(("conv2d_forward+conv2d_backward", "large"), {}):
            continue
        interleaved = (vs_torch or {}).get(c, {})
        for target, limit in ((overhead_results.CONV_TARGET, 1.5),
                              (overhead_results.POOL_TARGET, 1.0)):
            spread = ""
            if target in interleaved:
                value, how = interleaved[target]["ratio"], " (interleaved)"
            else:
                entry = ops.get(overhead_results.CASE_TARGETS[target], {})
                value, how = _vs_torch(entry, c), ""
                spread = _spread_note(entry, c, "torch")
            out.append(("5", f"{target} ≤ {limit}x PyTorch{how}", c, _against(value, limit),
                        _check(value, limit) + spread))
    return out


def head_to_head(all_rows):
    """Numba against Cython, op by op: [(case, numba, cython, cython/numba, note)]."""
    body = []
    for (op, size), entry in index(all_rows, "op").items():
        tn, tc = _median(entry, "numba"), _median(entry, "cython")
        if tn is None or tc is None:
            continue
        ratio = tc / tn
        if ratio > 1.2 or ratio < 1 / 1.2:
            # the analysis on record is of the pair, measured when it was written, maybe
            # the other way round (a per-call cost of Cython's under a run numba lost)
            slower = "cython" if ratio > 1.2 else "numba"
            reason = REASONS.get((op, size))
            note = (f"{slower} slower in this run; "
                    + (f"the analysis on record for this pair: {reason}" if reason
                       else "not analysed yet"))
        else:
            note = "within 20%"
        body.append([f"{op} [{size}]", fmt_time(tn), fmt_time(tc), f"{ratio:.2f}", note])
    return body


def _best_fastnn(entry):
    """(backend, seconds) of the fastest fastnn backend in a case's entry, or (None, None)."""
    times = {c: r["median"] for c, r in entry.items() if c not in ("student", "torch")}
    if not times:
        return None, None
    best = min(times, key=times.get)
    return best, times[best]


def _interleaved(results, target, backend=None, before=", "):
    """The interleaved ratio bench/overhead.py measured for target (and backend), as
    before + "X.XXx interleaved", or "" when it was not measured."""
    entry = ((results or {}).get(backend, {}) if backend else (results or {})).get(target)
    return "" if not entry else f"{before}{entry['ratio']:.2f}x interleaved"


def headline(all_rows, ceilings, overhead=None, vs_torch=None):
    """A few bullet lines with the main results (the README quotes them): the suite's
    medians, and next to a ratio the targets take from interleaved timing
    (bench/overhead.py), that ratio too."""
    lines = []
    steps = index(all_rows, "step")
    for (op, _), entry in steps.items():
        best, t = _best_fastnn(entry)
        if not best:
            continue
        parts = [f"{op}: fastest fastnn backend **{best}** {fmt_time(t)}"]
        if "torch" in entry:
            parts.append(f"{t / entry['torch']['median']:.2f}x PyTorch's time "
                         f"({fmt_time(entry['torch']['median'])}) in the suite"
                         + _interleaved(vs_torch, op, best))
        if "numpy" in entry and "student" in entry:
            parts.append("numpy backend "
                         f"{entry['numpy']['median'] / entry['student']['median']:.2f}x "
                         "the hand-written NumPy loop in the suite" + _interleaved(overhead, op))
        lines.append("- " + "; ".join(parts))
    ops = index(all_rows, "op")
    for key, label in ((("batchnorm_forward+batchnorm_backward", "large"),
                        "BatchNorm1d 256x1024 forward+backward"),
                       (("softmax_cross_entropy", "large"), "softmax-CE 4096x1000"),
                       (("conv2d_forward+conv2d_backward", "large"),
                        "Conv2d 32x64x16x16->128 3x3 forward+backward"),
                       (("relu", "large"), "ReLU on 16M float32")):
        entry = ops.get(key, {})
        best, t = _best_fastnn(entry)
        if not best:
            continue
        achieved, pct = ceilings.achieved(entry[best])
        text = f"- {label}: **{best}** {fmt_time(t)}"
        if "torch" in entry:
            text += f", {t / entry['torch']['median']:.2f}x PyTorch's time"
            # the targets table (and README) quote the interleaved ratio where one was
            # measured: give it beside the suite's, each named
            target = next((name for name, case in overhead_results.CASE_TARGETS.items()
                           if case == key), None)
            if target is not None:
                text += _interleaved(vs_torch, target, best, before=" in the suite, ")
        if "numpy" in entry:
            text += f", {entry['numpy']['median'] / t:.1f}x faster than the NumPy reference"
        if pct is not None:
            text += f", {achieved} ({pct:.0f}% of the ceiling)"
        lines.append(text)
    return "\n".join(lines)


# ---------------------------------------------------------------------------- render
def _machine_section(data):
    info = (data.get("machine_info") or {}).get("fastnn", {})
    commit = data.get("commit_info") or {}
    lines = ["| | |", "|---|---|"]
    for key in ("cpu", "vector_extensions", "l2_cache", "logical_cores", "python", "numpy",
                "numba", "numba_threading_layer", "cython", "scipy", "torch", "blas",
                "linear_products", "fastnn_backends", "fastnn_threads", "torch_threads",
                "warmup_calls"):
        if key in info:
            value = info[key] + (" a core" if key == "l2_cache" and info[key] != "unknown"
                                 else "")
            lines.append(f"| {key} | {value} |")
    if commit.get("id"):
        dirty = " (with uncommitted changes)" if commit.get("dirty") else ""
        lines.append(f"| commit | {commit['id'][:12]}{dirty} |")
    lines.append(f"| run at | {data.get('datetime', 'unknown')} |")
    return "\n".join(lines)


def _scaling_table(all_rows, kind, xlabel):
    series = {}
    for r in all_rows:
        if r["kind"] == kind:
            series.setdefault(r["x"], {})[r["contender"]] = r["median"]
    if not series:
        return ""
    cols = _ordered({c for v in series.values() for c in v})
    body = [[x] + [fmt_time(series[x].get(c)) for c in cols] for x in sorted(series)]
    return _table([xlabel] + cols, body)


def floors_text(floors):
    """The paragraph explaining bench/floors.py's results, or None."""
    parts = []
    bn = floors.get("batchnorm")
    if bn:
        parts.append(
            "BatchNorm1d 256x1024 forward+backward: the four passes any training-mode "
            "implementation makes over the (256, 1024) arrays (x for the statistics; x to y; "
            "grad_out and x for the two sums; grad_out and x to grad_in), made with one add "
            f"or multiply a value and nothing else, take {fmt_time(bn['traffic'])} against "
            f"PyTorch's {fmt_time(bn['torch'])} for the pair: {bn['ratio']:.2f}x, so the "
            "0.3x target lies below what the memory passes alone cost on this machine "
            "(the issue assumed PyTorch at about 1.5 ms here)")
    for op in ("linear_forward", "linear_backward"):
        lin = floors.get(op)
        if lin:
            parts.append(
                f"{op} 256x1024->1024: the matrix products alone ({lin['library']}, the "
                f"fastest library here) take {fmt_time(lin['products'])} against the NumPy "
                f"reference's {fmt_time(lin['reference'])} for the whole call, so no kernel "
                f"that computes them can be more than {lin['bound']:.2f}x faster than the "
                "reference (to within the few percent by which the suite's sequential "
                "medians, taken at another moment, scatter around it)")
    if not parts:
        return None
    blocks = next(iter(floors.values()))["blocks"]
    return ("Floors (`bench/floors.py`, timed interleaved as above, "
            f"{blocks} blocks): " + "; ".join(parts) + ".")


def render(data, not_run=(), plots_dir=RESULTS, md_dir=ROOT, note=None, overhead=None,
           cuda=None, vs_torch=None, bandwidth=None, floors=None, cuda_host=None,
           source="bench/results/latest.json"):
    """BENCHMARKS.md's text from a pytest-benchmark JSON dict; writes the plots.

    source: where data was read, as the report's first line names it.

    overhead: bench/overhead.py's interleaved results (issue 2's rows), or None to take
    issue 2's ratio from the suite's sequential medians; vs_torch: its interleaved
    ratios against PyTorch (issues 3 and 4), or None likewise. cuda: the saved GPU results
    (bench/cuda_results.py), or None for no CUDA section; cuda_host: the saved host
    times on the stand-in driver (bench/fake_cuda), or None. floors: bench/floors.py's
    results, or None."""
    all_rows = results_io.rows(data)
    ceilings = Ceilings(all_rows)
    plots = make_plots(all_rows, plots_dir)
    info = (data.get("machine_info") or {}).get("fastnn", {})
    threads = info.get("fastnn_threads", "?")
    out = ["# fastnn benchmarks", "",
           "Generated by `make bench` (`python -m bench.report`) from "
           f"`{source}`; do not edit by hand.", ""]
    if note:
        out += [f"**Note on this run:** {note}", ""]
    out += [
           "How these numbers are taken: every contender gets the same inputs (built from one "
           "seed, float32; PyTorch's dropout keeps its mask as bool); before an op is timed on "
           "a backend other than numpy or in PyTorch, its result at the size timed is checked "
           "against the NumPy reference's (dropout's random mask aside; PyTorch's tensors "
           "as `.numpy()`), and before a training step is timed (the steps, the scaling "
           "steps, the epoch's loop), its losses over 4 steps (the epoch's first 4 batches) "
           "against the numpy backend's: a benchmark whose results "
           "differ fails and is not timed; each benchmark is called "
           f"{info.get('warmup_calls', 2)} times "
           "untimed first (so Numba's JIT compile and first-touch page faults are excluded), "
           f"then pytest-benchmark times it over rounds ({info.get('rounds', 'at least 5')}; "
           "a round repeats a call that takes microseconds enough times to last 0.2 ms); "
           "every time below is the **median** round. fastnn and PyTorch run "
           f"with {threads} threads (`fastnn.set_num_threads`, `torch.set_num_threads`) "
           "unless a table says otherwise. fastnn rows call the backend's kernels with "
           "preallocated `out=` buffers, as the layers do; PyTorch rows call the same "
           "computation through `torch.ops.aten` (its layers' kernels: the elementwise ops "
           "and the optimizers' updates into preallocated outputs, the others "
           "through the overloads its layers call, which allocate their results) and, for the "
           "optimizers, the update `torch.optim`'s step runs "
           "inside, without that step's Python wrapper, as fastnn's rows time its kernels "
           "without `fastnn.optim`'s: the fused one-pass CPU kernels (what `fused=True` "
           "calls) for SGD, Adam and Adagrad, the single-tensor functional forms for the "
           "others. "
           "'time / PyTorch' below 1 means "
           "faster than PyTorch. A median more than "
           f"{DISTURBED:.0f} times the case's fastest round is marked 'rounds spread' with "
           "that round: its ratios say more about that moment of the machine than about the "
           "code (a target's verdict taken from such a median says '(rounds spread)').", "",
           "Compare two runs: `.venv/bin/pytest-benchmark compare 0001 0002 --group-by=group` "
           "(each `make bench` autosaves a numbered run under `.benchmarks/`).", "",
           "## Machine", "", _machine_section(data), ""]
    head = headline(all_rows, ceilings, overhead, vs_torch)
    if head:
        out += ["## Headline", "", head, ""]

    # a subset run (-k) renders only the sections it has rows for: no heading over an
    # empty table (a full run has them all)
    body = []
    several = len(ceilings.gemm_by_library) > 1
    for library, rate in ceilings.gemm_by_library.items():
        best = " (the ceiling)" if several and rate == ceilings.gemm else ""
        body.append([f"sgemm, {library}, {threads} threads", "2048x2048 float32 product",
                     f"{rate / 1e9:.1f} GFLOP/s{best}"])
    both = bool(ceilings.copy_numba and ceilings.copy_single)

    def copy_rate(rate):
        best = " (the ceiling)" if both and rate == ceilings.copy else ""
        return f"{rate / 1e9:.1f} GB/s{best}"
    if ceilings.copy_numba:
        body.append([f"memory copy, Numba prange, {threads} threads",
                     "256 MB float32 array copied, 2 bytes moved per byte copied",
                     copy_rate(ceilings.copy_numba)])
    if ceilings.copy_single:
        body.append(["memory copy, np.copyto, 1 thread", "same arrays",
                     copy_rate(ceilings.copy_single)])
    if body:
        out += ["## Ceilings (measured in this run)", "",
                _table(["ceiling", "method", "value (fastest round)"], body), "",
                "Products (linear, conv, whole steps) are given as GFLOP/s and a percentage of "
                "the sgemm ceiling (the fastest BLAS measured); everything else as GB/s of its "
                "minimum memory traffic (each array read or written once) and a percentage of "
                "the copy bandwidth (the faster copy measured). Shares above 100% are real: the "
                "copy counts 2 bytes "
                "a byte copied, but its stores first read each destination line (write-"
                "allocate), so it moves about 3; kernels whose large outputs are written with "
                "streaming stores skip that read, and in-cache (course-size) cases are not "
                "bound by memory at all.", ""]

    out += ["## Targets from the issues", "",
            _table(["issue", "target", "backend", "measured", "verdict"],
                   [list(t) for t in targets(all_rows, ceilings, overhead, vs_torch,
                                             bandwidth, floors)]), ""]
    if floors and floors_text(floors):
        out += [floors_text(floors), ""]
    if overhead:
        blocks = next(iter(overhead.values())).get("blocks", 15)
        out += ["Issue 2's overhead rows come from `bench/overhead.py`: the numpy backend's "
                f"step and the student loop timed in alternating blocks ({blocks} blocks of about "
                "50 ms each, warm-up excluded), the ratio being the median of the per-block "
                "ratios, so drift of the machine during the suite hits both sides alike. "
                "Times (median block, per step): " + "; ".join(
                    f"{c}: student {fmt_time(v['student'])}, numpy backend "
                    f"{fmt_time(v['numpy'])}" for c, v in overhead.items()) + ".", ""]
    if vs_torch:
        blocks = next(iter(next(iter(vs_torch.values())).values())).get("blocks", 25)
        out += ["Issues 3, 4 and 5's rows against PyTorch marked interleaved (MLP steps, "
                "BatchNorm, softmax-CE, Conv2d, MaxPool2d) come from "
                "`bench/overhead.py` likewise: each compiled backend and PyTorch (same "
                f"process, same threads) in {blocks} alternating blocks of about 50 ms (at "
                "least one call each), the ratio the median of the "
                "per-block ratios. Times (median block): " + "; ".join(
                    f"{b} {t}: {fmt_time(v['fastnn'])} vs PyTorch {fmt_time(v['torch'])}"
                    for b, per in vs_torch.items() for t, v in per.items()) + ".", ""]
    if bandwidth:
        blocks = next(iter(next(iter(bandwidth.values())).values()))["blocks"]
        out += ["The elementwise rows marked interleaved come from `bench/overhead.py` too: "
                "each kernel on 16M float32 values and the copy ceiling (the Numba copy of "
                f"256 MB above) in {blocks} alternating blocks of about 50 ms, the share the "
                "median over blocks of (the kernel's bytes / its time) / (the copy's bytes / "
                "its time), so the machine's memory bandwidth of that moment is the "
                "reference (on this virtual machine it moves by a third between runs "
                "minutes apart, which a ceiling measured once at the start of the suite "
                "does not follow). Lowest shares: " + "; ".join(
                    f"{b} {op} {100 * v['fraction']:.0f}%"
                    for b, per in bandwidth.items()
                    for op, v in sorted(per.items(), key=lambda kv: kv[1]["fraction"])[:3])
                + ".", ""]

    steps = index(all_rows, "step")
    if steps:
        out += ["## Training steps", "",
                "One step = forward, softmax cross-entropy, backward, SGD with momentum 0.9. "
                "fastnn backends run the layer API (`fastnn.models.MLP` / `nn.Sequential`, "
                "`nn.CrossEntropyLoss`, `optim.SGD`); 'student' is `bench/student_numpy.py`, "
                "the same network written in plain NumPy; 'torch' is `torch.nn` + "
                "`F.cross_entropy` + `torch.optim.SGD`. GFLOP/s counts the matrix products "
                "only.", "",
                comparison_table(steps, ceilings, label="step"), ""]
    epoch = index(all_rows, "epoch")
    if epoch:
        out += ["## One epoch of Fashion-MNIST", "",
                "60000 training images, MLP 784-100-10 ReLU, batch 128, shuffled batches from "
                "`fastnn.data.DataLoader`, 3 rounds (median), after a warm-up step.", "",
                comparison_table(epoch, ceilings, label="epoch"), ""]

    ops = index(all_rows, "op")
    if ops:
        out += ["## Ops", "",
                "Every op of the table (`fastnn/optable.py`) at the classic course size "
                "(784-100-10 at batch 128) and a large size, plus the forward+backward pairs "
                "the issues set targets for.", ""]
    families = {}
    for key, entry in ops.items():
        family = next(iter(entry.values())).get("family", "other")
        families.setdefault(family, []).append(key)
    for family, keys in families.items():
        out += [f"### {family}", "", comparison_table(ops, ceilings, keys, label="op"), ""]

    h2h = head_to_head(all_rows)
    if h2h:
        out += ["## Numba against Cython, op by op", "",
                "Ratio = Cython's median / Numba's (below 1: Cython faster).", "",
                _table(["op", "numba", "cython", "cython / numba", "note"], h2h), ""]

    scaling = []
    for name, kind, xlabel, text in (
            ("batch", "scaling-batch", "batch",
             "MLP 784-1024-1024-10 LeakyReLU step against batch size (plot: time per sample)."),
            ("width", "scaling-width", "width",
             "MLP 784-W-W-10 LeakyReLU step at batch 128 against hidden width W."),
            ("threads", "scaling-threads", "threads",
             "MLP 784-1024-1024-10 LeakyReLU step at batch 256 with 1 thread and with all "
             "threads (fastnn and PyTorch set alike; the student loop's BLAS follows "
             "fastnn's setting).")):
        table = _scaling_table(all_rows, kind, xlabel)
        if not table:
            continue
        scaling += [f"### {name}", "", text, ""]
        if name in plots:
            scaling += [f"![{name} scaling]({os.path.relpath(plots[name], md_dir)})", ""]
        scaling += [table, ""]
    if scaling:
        out += ["## Scaling", ""] + scaling

    out += cuda_results.section(cuda)
    out += cuda_results.host_section(cuda_host)
    if not_run:
        reasons = {}
        for item in not_run:
            reasons.setdefault((item["status"], item["reason"]), []).append(item["test"])
        out += ["## Not measured in this run", "",
                _table(["status", "reason", "benchmarks"],
                       [[s, r.replace("|", "/"), len(t)] for (s, r), t in reasons.items()]), ""]
    return "\n".join(out)


def _shown_path(path):
    """path from the repository's root when it lies inside it, else absolute."""
    path = os.path.abspath(path)
    inside = os.path.commonpath([path, os.path.abspath(ROOT)]) == os.path.abspath(ROOT)
    return os.path.relpath(path, ROOT) if inside else path


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-run", action="store_true", help="only render from --json")
    parser.add_argument("--json", default=LATEST, help="pytest-benchmark JSON to read/write")
    parser.add_argument("--output", default=os.path.join(ROOT, "BENCHMARKS.md"))
    parser.add_argument("-k", dest="keyword", help="pytest -k expression: run a subset")
    parser.add_argument("--note", default=os.environ.get("FASTNN_BENCH_NOTE"),
                        help="a sentence printed at the top of BENCHMARKS.md (e.g. machine load)")
    parser.add_argument("--dry-run", action="store_true",
                        help="one timed round per benchmark: checks that every benchmark "
                             "runs (numbers meaningless); without --json its results go to a "
                             "temporary folder, not bench/results/")
    args = parser.parse_args(argv)
    if args.keyword is not None and not args.keyword.strip():
        # (an empty -k, a script's unset variable, ran the full suite over the committed
        # results)
        parser.error("-k expects a pytest -k expression, got an empty one")
    subset = bool(args.keyword) and not args.no_run
    if subset and args.note is None:
        args.note = (f"a `-k {args.keyword!r}` selection of the suite: the rows it did not "
                     f"select are empty or 'not measured' (`or test_gemm or test_copy` in "
                     f"the expression adds the ceilings and the % columns)")
    if args.dry_run:
        dry = ("a dry run: one timed round per benchmark, to check that each runs; the "
               "numbers mean nothing")
        args.note = dry if args.note is None else f"{args.note}; {dry}"
    dry_run = args.dry_run and not args.no_run
    if dry_run and os.path.abspath(args.json) == os.path.abspath(LATEST):
        # one round each: numbers that mean nothing, never over the committed results
        # (a dry run without --json rewrote bench/results/ and BENCHMARKS.md), nor over
        # a subset run's (a dry run with -k went to bench/results/subset/)
        args.json = os.path.join(tempfile.mkdtemp(prefix="fastnn-bench-dry-run-"),
                                 "latest.json")
        print(f"dry run: results in {os.path.dirname(args.json)}", flush=True)
    if subset and os.path.abspath(args.json) == os.path.abspath(LATEST):
        # a subset's results are not the full run's: a folder of their own, unless the
        # caller chose where (the interleaved ratios and floors belong to full runs)
        args.json = os.path.join(SUBSET, "latest.json")
    if (subset or dry_run) \
            and os.path.abspath(args.output) == os.path.join(ROOT, "BENCHMARKS.md"):
        # their report beside their results, whether --json was given or not (with
        # --json elsewhere and no --output, a subset's or a dry run's report went over
        # the committed BENCHMARKS.md)
        args.output = os.path.join(os.path.dirname(os.path.abspath(args.json)),
                                   "BENCHMARKS.md")
    if args.dry_run:
        os.environ.update(FASTNN_BENCH_MAX_TIME="0", FASTNN_BENCH_MIN_ROUNDS="1",
                          FASTNN_BENCH_EPOCH_ROUNDS="1")
    status = 0
    results_dir = os.path.dirname(os.path.abspath(args.json))
    not_run_path = os.path.join(results_dir, os.path.basename(NOT_RUN))
    side = {path: os.path.join(results_dir, os.path.basename(path))
            for path in (overhead_results.OVERHEAD_JSON, overhead_results.VS_TORCH_JSON,
                         overhead_results.BANDWIDTH_JSON, floor_results.FLOORS_JSON)}
    if not args.no_run:
        # a run's outputs go first: a run that writes none (a bad -k expression) must not
        # leave the previous run's to be rendered as its own
        for path in ([not_run_path] + ([args.json] if subset else [])):
            if os.path.exists(path):
                os.remove(path)
        started = datetime.datetime.now()
        status = run_suite(args.json, args.keyword, not_run=not_run_path,
                           save=not args.dry_run and not subset)
        if subset and status == 5:   # pytest: no test collected
            print(f"no benchmark matches -k {args.keyword!r}", file=sys.stderr)
            return status
        if status in (2, 3, 4):   # pytest: interrupted, internal error, usage error
            print(f"pytest stopped with status {status}: nothing to report",
                  file=sys.stderr)
            return status
        for path in side.values():   # a full run measures each anew below, or leaves
            if os.path.exists(path):   # it absent; a subset run measures none of them
                os.remove(path)
        if not subset:
            blocks = 1 if args.dry_run else 15
            overhead_results.save(overhead_results.measure(blocks=blocks),
                                  side[overhead_results.OVERHEAD_JSON])
            from . import contenders
            compiled = [b for b in ("numba", "cython") if b in contenders.backends()]
            if contenders.torch_available() and compiled:
                overhead_results.save(
                    overhead_results.measure_vs_torch(compiled, 1 if args.dry_run else 25),
                    side[overhead_results.VS_TORCH_JSON])
            if compiled:
                overhead_results.save(
                    overhead_results.measure_bandwidth(compiled, 1 if args.dry_run else 15),
                    side[overhead_results.BANDWIDTH_JSON])
            overhead_results.save(floor_results.measure(1 if args.dry_run else 15),
                                  side[floor_results.FLOORS_JSON])
        print(f"suite finished in {(datetime.datetime.now() - started).seconds} s "
              f"(pytest status {status})", flush=True)
    if not os.path.exists(args.json):
        print(f"no results at {args.json}", file=sys.stderr)
        return 1
    data = results_io.load_json(args.json)
    not_run = []
    if os.path.exists(not_run_path):
        with open(not_run_path) as f:
            not_run = json.load(f)
    text = render(data, not_run, plots_dir=results_dir,
                  md_dir=os.path.dirname(os.path.abspath(args.output)), note=args.note,
                  overhead=overhead_results.load(side[overhead_results.OVERHEAD_JSON]),
                  vs_torch=overhead_results.load(side[overhead_results.VS_TORCH_JSON]),
                  bandwidth=overhead_results.load(side[overhead_results.BANDWIDTH_JSON]),
                  floors=overhead_results.load(side[floor_results.FLOORS_JSON]),
                  # (the GPU runs' files, bench/cuda_device_checks.sh's: full reports)
                  cuda=None if subset else cuda_results.load(),
                  cuda_host=None if subset else cuda_results.load(cuda_results.HOST_JSON),
                  source=_shown_path(args.json))
    with open(args.output, "w") as f:
        f.write(text + "\n")
    print(f"wrote {args.output}")
    # a failed benchmark is reported in BENCHMARKS.md; the exit status says so too
    return 0 if status in (0, 5) else status


if __name__ == "__main__":
    sys.exit(main())
