"""Timing outside pytest-benchmark (used by ``python -m fastnn bench --quick``).

The same rules as the suite: warm-up calls first (Numba compiles on the first call,
and that compile time is not run time), then the median of repeated timed calls.
"""
import time

import numpy as np


def warm_up(fn, calls=2):
    """Call ``fn`` ``calls`` times untimed (JIT compile, caches, first-touch of buffers)."""
    for _ in range(calls):
        fn()


def run_times(fn, min_runs=5, max_time=0.25, max_runs=200, warmup=2):
    """Seconds of each timed call of ``fn`` after ``warmup`` untimed calls.

    Runs at least ``min_runs`` times and stops after ``max_time`` seconds of timed
    calls (or ``max_runs`` calls)."""
    warm_up(fn, warmup)
    times = []
    start = time.perf_counter()
    while len(times) < max_runs:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= min_runs and time.perf_counter() - start >= max_time:
            break
    return times


def median_time(fn, min_runs=5, max_time=0.25, max_runs=200, warmup=2):
    """Median seconds of one call of ``fn`` (run_times' calls). Returns (median_seconds,
    runs)."""
    times = run_times(fn, min_runs, max_time, max_runs, warmup)
    return float(np.median(times)), len(times)


def fastest_time(fn, min_runs=5, max_time=0.25, max_runs=200, warmup=2):
    """Seconds of the fastest call of ``fn`` (run_times' calls): a ceiling, what the
    machine can do, as the suite takes its ceilings (bench/results_io.Ceilings). Returns
    (seconds, runs)."""
    times = run_times(fn, min_runs, max_time, max_runs, warmup)
    return float(min(times)), len(times)


def fmt_time(seconds):
    """Seconds as the tables print them: 12.5 µs, 3.46 ms, 2.50 s; None as a dash."""
    if seconds is None:
        return "—"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        ms = seconds * 1e3
        return f"{ms:.2f} ms" if ms < 10 else f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"
    return f"{seconds:.2f} s"


def fmt_ratio(value, suffix="x"):
    """A ratio as the tables print it: two decimals, or two significant digits below 0.1
    (a ratio of 0.004 is not '0.00x'); None as a dash."""
    if value is None:
        return "—"
    return f"{value:.2f}{suffix}" if abs(value) >= 0.1 or value == 0 else f"{value:.2g}{suffix}"
