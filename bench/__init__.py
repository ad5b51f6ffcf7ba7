"""fastnn's benchmark suite (pytest-benchmark) and the report that writes BENCHMARKS.md.

Run everything with ``make bench`` (``python -m bench.report``); a one-minute version
of the main table is ``python -m fastnn bench --quick``. The wheel holds only the quick
table's modules (setup.py's QUICK_BENCH_MODULES: this file, ceilings, cases, steps,
student_numpy, contenders, timing) as ``fastnn._bench``: they import nothing else of here.

Modules:
  ceilings.py       the machine's limits: BLAS sgemm GFLOP/s, memory copy bandwidth
  cases.py          every op of the table as a benchmark case (inputs, cost model, PyTorch twin)
  steps.py          whole training steps (MLPs, SmallCNN) and one epoch of Fashion-MNIST
  student_numpy.py  the MLP step as a student writes it in plain NumPy (no fastnn)
  contenders.py     who runs: every fastnn backend, the student loop, PyTorch
  timing.py         warm-up and median timing outside pytest (the quick CLI)
  machine.py        CPU model, core count, library versions, thread counts
  report.py         runs the suite and renders BENCHMARKS.md and the plots
  test_*.py         the pytest-benchmark modules
"""
