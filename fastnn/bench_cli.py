"""``python -m fastnn bench``: fastnn's speed on this machine.

``--quick`` prints, in about a minute, the main table: the machine's ceilings, the MLP
training steps and the key large ops on every backend, against the NumPy reference, the
student NumPy loop and PyTorch (when installed). Without ``--quick`` it runs the full
pytest-benchmark suite and writes BENCHMARKS.md (the same as ``make bench``).

The suite lives in the source tree's ``bench/`` package. The wheel ships only the modules
the quick table needs (setup.py's ``QUICK_BENCH_MODULES``, installed as ``fastnn._bench``),
so ``--quick`` runs from an installed fastnn too; the full run (and ``-k``) needs a checkout.
"""
import importlib
import importlib.util
import os
import sys

# The quick table: MLP step configs and (op, size) cases of bench.cases.
QUICK_OPS = (("relu", "large"), ("softmax_cross_entropy", "large"),
             ("batchnorm_forward+batchnorm_backward", "large"), ("sgd_update", "large"),
             ("conv2d_forward+conv2d_backward", "large"),
             ("max_pool2d_forward+max_pool2d_backward", "large"))
QUICK_MAX_TIME = 0.15
# The bench/ modules quick_table imports: setup.py's QUICK_BENCH_MODULES ships them, and
# the ones they import, in the wheel (tests/test_probe_install_journeys.py checks it)
QUICK_IMPORTS = ("cases", "ceilings", "contenders", "steps", "timing")

FULL_SUITE_NOTE = ("the full benchmark suite (bench/, pytest-benchmark) ships with fastnn's "
                   "source tree, not the wheel: in a checkout, run `make bench`, or "
                   "`pip install -e .` and then this command; `python -m fastnn bench "
                   "--quick` runs from an installed fastnn too")


def _checkout_root():
    """The source tree this fastnn was imported from (an editable install), or None."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return root if os.path.isfile(os.path.join(root, "bench", "report.py")) else None


def _import_bench():
    """The ``bench`` package of the checkout this fastnn was imported from."""
    root = _checkout_root()
    if root is None:
        raise RuntimeError(FULL_SUITE_NOTE)
    if root not in sys.path:
        sys.path.insert(0, root)
    import bench  # noqa: F401
    return root


def _quick_package():
    """The package holding the quick table's modules: the checkout's ``bench``, else the
    wheel's ``fastnn._bench`` (setup.py's QUICK_BENCH_MODULES of bench/)."""
    if _checkout_root() is not None:
        _import_bench()
        return "bench"
    if importlib.util.find_spec("fastnn._bench") is None:
        raise RuntimeError("this fastnn was installed without its quick benchmark modules "
                           "(fastnn._bench); " + FULL_SUITE_NOTE)
    return "fastnn._bench"


def add_arguments(parser):
    parser.add_argument("--quick", action="store_true",
                        help="a one-minute version of the main table, printed here")
    parser.add_argument("-k", dest="keyword", default=None,
                        help="not with --quick: run the benchmarks this pytest -k "
                             "expression selects, reported in bench/results/subset/")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads for fastnn and PyTorch (default: FASTNN_NUM_THREADS "
                             "or OMP_NUM_THREADS, else every core)")


def run(args):
    if args.threads is not None and args.threads < 1:  # (0 ran on every core)
        print(f"error: --threads must be positive, got {args.threads}", file=sys.stderr)
        return 2
    if args.threads is not None and args.threads >= 2**31:  # (OpenMP's count is a C int)
        print(f"error: --threads must be below 2**31, got {args.threads}", file=sys.stderr)
        return 2
    if args.keyword is not None and not args.keyword.strip():
        # (a script's empty variable ran the full suite over the committed results)
        print("error: -k expects a pytest -k expression, got an empty one", file=sys.stderr)
        return 2
    if args.quick and args.keyword:   # (the quick table has no benchmarks to select)
        print("error: -k selects benchmarks of the full run; --quick takes none",
              file=sys.stderr)
        return 2
    try:
        if args.quick:
            package = _quick_package()
        else:
            _import_bench()
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.quick:
        from bench import report
        if args.threads is not None:  # the suite's processes take their count from here
            os.environ["FASTNN_NUM_THREADS"] = str(args.threads)
            import fastnn
            fastnn.set_num_threads(args.threads)
        argv = ["-k", args.keyword] if args.keyword else []
        return report.main(argv)
    quick_table(threads=args.threads, out=sys.stdout, package=package)
    return 0


def _time(timing, fn, timings, key):
    try:
        timings[key] = timing.median_time(fn(), max_time=QUICK_MAX_TIME, min_runs=3)[0]
    except Exception as err:  # a contender that cannot run this case is shown, not fatal
        timings[key] = None
        return f"{key[1]} on {key[0]}: {type(err).__name__}: {err}"
    return None


def _op_runner(case, contender, contenders):
    """The callable timing ``case`` on ``contender``; a fastnn backend's result is first
    checked against the NumPy reference's (``Case.check``, PyTorch's ``Case.check_torch``:
    an AssertionError, shown as 'not measured', where it differs), as the suite does."""
    backend = None if contender == "torch" else contenders.load_backend(contender)
    return case.checked_call(contender, backend)


def _step_runner(steps, config, contender):
    """The callable timing MLP ``config``'s training step on ``contender``, after its
    losses over a few steps are checked against the numpy backend's (as the suite)."""
    return steps.checked_mlp_step(contender, *steps.MLP_CONFIGS[config], config)


def quick_table(threads=None, out=sys.stdout, package=None):
    """Measure and print the quick table; returns {(case, contender): seconds or None}.
    package: where the bench modules are (``bench`` or ``fastnn._bench``; default: as
    ``python -m fastnn bench --quick`` finds them)."""
    package = package or _quick_package()
    cases, ceilings, contenders, steps, timing = (
        importlib.import_module(f"{package}.{name}") for name in QUICK_IMPORTS)
    n = threads or contenders.all_threads()
    contenders.set_threads(n)
    has_torch = contenders.torch_available()
    backends = contenders.backends()
    print(f"fastnn quick benchmark: {n} threads, backends {', '.join(backends)}; "
          f"median of repeated calls after 2 warm-up calls", file=out)
    gemm = ceilings.measure_gemm_gflops(1024, max_time=0.3)
    # the faster copy is the ceiling, as the suite's (bench/results_io.Ceilings): with
    # another process on a core the 2-thread Numba copy can fall below np.copyto's one
    copies = {method: ceilings.measure_copy_gbps(64 * 2**20, method=method, max_time=0.3)
              for method in ("numba", "numpy")}
    copy_method = max(copies, key=copies.get)
    copy = copies[copy_method]
    print(f"ceilings (fastest call, as the suite's): sgemm {gemm:.0f} GFLOP/s (1024^3, "
          f"the faster of NumPy's BLAS and MKL where fastnn uses it); "
          f"copy {copy:.1f} GB/s (64 MB, "
          f"{'Numba prange' if copy_method == 'numba' else 'np.copyto, 1 thread'}; the "
          f"faster of it and {'np.copyto' if copy_method == 'numba' else 'Numba prange'}'s "
          f"{min(copies.values()):.1f})", file=out)
    if not has_torch:
        print(contenders.TORCH_NOTE, file=out)
    timings, problems = {}, []
    step_cols = backends + ["student"] + (["torch"] if has_torch else [])
    for config, (sizes, act, batch) in steps.MLP_CONFIGS.items():
        for c in step_cols:
            problems.append(_time(timing, lambda: _step_runner(steps, config, c),
                                  timings, (config, c)))
    op_cols = backends + (["torch"] if has_torch else [])
    case_rows = []
    for op, size in QUICK_OPS:
        case = cases.get_case(op, size)
        case_rows.append(case)
        for c in op_cols:
            problems.append(_time(timing, lambda c=c: _op_runner(case, c, contenders),
                                  timings, (case.id, c)))
    cols = [c for c in ["numpy", "numba", "cython", "cuda", "student", "torch"] if c in step_cols]
    header = ["case"] + cols + ["best fastnn", "vs numpy", "vs torch", "achieved"]
    rows = []
    for name, flops, nbytes in ([(cfg, steps.mlp_step_flops(s, b), None)
                                 for cfg, (s, _, b) in steps.MLP_CONFIGS.items()]
                                + [(c.id, c.flops, c.bytes) for c in case_rows]):
        t = {c: timings.get((name, c)) for c in cols}
        fast = {c: v for c, v in t.items() if c in backends and v}
        best = min(fast, key=fast.get) if fast else None
        tb = fast.get(best)
        vs_numpy = timing.fmt_ratio(t["numpy"] / tb if tb and t.get("numpy") else None)
        vs_torch = timing.fmt_ratio(tb / t["torch"] if tb and t.get("torch") else None)
        if tb and flops:
            achieved = f"{flops / tb / 1e9:.0f} GFLOP/s ({100 * flops / tb / 1e9 / gemm:.0f}%)"
        elif tb and nbytes:
            achieved = f"{nbytes / tb / 1e9:.1f} GB/s ({100 * nbytes / tb / 1e9 / copy:.0f}%)"
        else:
            achieved = "—"
        rows.append([name] + [timing.fmt_time(t[c]) for c in cols]
                    + [best or "—", vs_numpy, vs_torch, achieved])
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths]] + rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(r, widths)), file=out)
    print("vs numpy: NumPy reference time / best fastnn time; vs torch: best fastnn time / "
          "PyTorch time (below 1 is faster); achieved: of the sgemm or copy ceiling.", file=out)
    for p in filter(None, problems):
        print("not measured:", p, file=out)
    return timings
