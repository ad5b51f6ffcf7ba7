"""Why Numba or Cython loses an op by more than 20% (issue 4's head-to-head table).

(op, size) -> one line, for example
    ("tanh", "large"): "numba: math.tanh is a scalar libm call per element; cython's "
                       "inlined polynomial vectorises",
An op that loses by more than 20% with no entry here is shown as "not analysed yet".
The numba and cython engineers fill this from profiling; keep each reason to one line.
"""

REASONS = {}
