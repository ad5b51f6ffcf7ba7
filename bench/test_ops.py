"""Each op of the table (and the forward+backward pairs with targets) on each backend
and in PyTorch, at the course size and a large size."""
import pytest

from . import cases, contenders
from .conftest import backend_or_skip, measure, torch_or_skip

CASES = cases.all_cases()


@pytest.mark.parametrize("contender", contenders.op_contenders())
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_op(benchmark, case, contender):
    if contender == "torch":
        torch_or_skip()
        fn = case.torch()
    else:
        fn = case.fastnn(backend_or_skip(contender))
    measure(benchmark, fn, case.id, kind="op", contender=contender,
            **case.extra_info(contender))
