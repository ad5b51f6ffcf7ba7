"""Reading a pytest-benchmark JSON into flat rows, and the derived numbers of a row.

A row is a dict: kind ('op', 'step', 'epoch', 'ceiling', 'scaling-batch',
'scaling-width', 'scaling-threads'), op, size, shape, contender, threads, x (the
scaling variable), flops, bytes, median (seconds), rounds, iqr.
"""
import json


def load_json(path):
    with open(path) as f:
        return json.load(f)


def rows(data):
    """Flat rows from a pytest-benchmark JSON dict (benchmarks without extra_info skipped)."""
    out = []
    for bench in data.get("benchmarks", []):
        info = dict(bench.get("extra_info") or {})
        if "kind" not in info:
            continue
        stats = bench["stats"]
        info.update(median=stats["median"], min=stats.get("min", stats["median"]),
                    rounds=stats.get("rounds"), iqr=stats.get("iqr"),
                    group=bench.get("group"), name=bench.get("name"))
        out.append(info)
    return out


class Ceilings:
    """The machine's measured limits: sgemm FLOP/s and copy bandwidth (bytes/s).

    A ceiling is what the machine can do, so it is taken from the fastest round
    (stats 'min'), not the median: a round slowed by another process says nothing
    about the limit."""

    def __init__(self, all_rows):
        self.gemm = self.copy = self.copy_numba = self.copy_single = None
        self.gemm_by_library = {}   # contender ('numpy BLAS', 'MKL') -> FLOP/s
        for r in all_rows:
            if r["kind"] != "ceiling":
                continue
            if r["op"] == "sgemm":
                self.gemm_by_library[r["contender"]] = r["flops"] / r["min"]
            elif r["op"] == "copy-numba":
                self.copy_numba = r["bytes"] / r["min"]
            elif r["op"] == "copy-numpy":
                self.copy_single = r["bytes"] / r["min"]
        # the fastest BLAS at hand is the ceiling, and the fastest copy (the Numba
        # prange copy on a quiet machine; np.copyto's one thread where another process
        # holds a core: 29.9 against 11.8 GB/s in one run, and a limit below a measured
        # rate is none)
        self.gemm = max(self.gemm_by_library.values(), default=None)
        self.copy = max((c for c in (self.copy_numba, self.copy_single) if c), default=None)

    def achieved(self, row):
        """(text like '123 GFLOP/s' or '20.1 GB/s', percent of the ceiling or None)."""
        if row.get("flops"):
            rate = row["flops"] / row["median"]
            pct = 100 * rate / self.gemm if self.gemm else None
            return f"{rate / 1e9:.1f} GFLOP/s", pct
        if row.get("bytes"):
            rate = row["bytes"] / row["median"]
            pct = 100 * rate / self.copy if self.copy else None
            return f"{rate / 1e9:.1f} GB/s", pct
        return "", None


def index(all_rows, kind):
    """{(op, size): {contender: row}} for the rows of one kind."""
    table = {}
    for r in all_rows:
        if r["kind"] == kind:
            table.setdefault((r["op"], r.get("size")), {})[r["contender"]] = r
    return table
