"""Each op of the table (and the forward+backward pairs with targets) on each backend
and in PyTorch, at the course size and a large size. A backend's result, and PyTorch's,
is checked against the NumPy reference's, at the size timed, before it is timed."""
import pytest

from . import cases, contenders
from .conftest import backend_or_skip, measure, torch_or_skip

CASES = cases.all_cases()


@pytest.mark.parametrize("contender", contenders.op_contenders())
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_op(benchmark, case, contender):
    if contender == "torch":
        torch_or_skip()
        fn = case.checked_call(contender)
    else:
        fn = case.checked_call(contender, backend_or_skip(contender))
    measure(benchmark, fn, case.id, kind="op", contender=contender,
            **case.extra_info(contender))
