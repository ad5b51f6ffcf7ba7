"""The numba backend's elementwise kernels run in parallel as a ``prange`` over blocks
of ``config.ELEMENTWISE_BLOCK`` values, each block the serial loop
(config.ElementwiseKernel). That variant must give the serial loop's bits on every
element, including a ragged last block, blocks split at any offset and outputs that are
the input itself (the two-pass kernels copy each tile of the input first there)."""
import numpy as np
import pytest

pytest.importorskip("numba")

from fastnn.kernels.numba_cpu import activations, config  # noqa: E402

ELEMENTWISE = sorted(name for name, k in vars(activations).items()
                     if isinstance(k, config.ElementwiseKernel))
SCALARS = {"_leaky_relu": (0.1,), "_leaky_relu_backward": (0.1,), "_elu": (1.3,),
           "_elu_backward": (1.3,), "_softplus": (1.5, 4.0), "_softplus_backward": (1.5, 4.0),
           "_hardtanh": (-0.7, 1.2), "_hardtanh_backward": (-0.7, 1.2)}


def test_every_pointwise_activation_is_blocked():
    # the forward and backward of every activation but sine (its own blocks) and the
    # row-wise softmaxes
    assert len(ELEMENTWISE) >= 28
    assert "_softplus" in ELEMENTWISE and "_sigmoid_backward" in ELEMENTWISE


def _arguments(name, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * 6).astype(dtype)
    x[:7] = [np.nan, np.inf, -np.inf, 0.0, -0.0, 90.0, -90.0]
    arrays = [x]
    if name.endswith("_backward"):
        arrays = [rng.standard_normal(n).astype(dtype), x]
    return arrays, SCALARS.get(name, ())


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_blocked_parallel_variant_equals_serial_loop(name, dtype):
    kernel = getattr(activations, name)
    n = 3 * config.ELEMENTWISE_BLOCK + 1001   # a ragged last block
    arrays, scalars = _arguments(name, n, dtype)
    serial = np.empty(n, dtype)
    kernel.serial(*arrays, *scalars, serial)
    blocked = np.empty(n, dtype)
    kernel.parallel(*arrays, *scalars, blocked)
    np.testing.assert_array_equal(blocked, serial)
    # an offset view: blocks fall at other places in the data, results do not move
    offset = np.empty(n - 5, dtype)
    kernel.parallel(*[a[5:] for a in arrays], *scalars, offset)
    np.testing.assert_array_equal(offset, serial[5:])


@pytest.mark.parametrize("name", ["_softplus", "_sigmoid", "_gelu", "_mish"])
def test_blocked_variant_in_place(name):
    n = 2 * config.ELEMENTWISE_BLOCK + 77
    (x,), scalars = _arguments(name, n, np.float32)
    expected = np.empty(n, np.float32)
    getattr(activations, name).serial(x, *scalars, expected)
    getattr(activations, name).parallel(x, *scalars, x)
    np.testing.assert_array_equal(x, expected)


def test_a_parameter_named_like_a_generated_variable_is_refused():
    # the generated variants' own names must not shadow a kernel's parameter (a
    # parameter ``b`` once met the loop index ``b`` of the blocked variant)
    def _bad(x, block_, out):  # IN x (n,); OUT out (n,)
        for i in range(x.shape[0]):
            out[i] = x[i] + block_

    with pytest.raises(TypeError, match="taken by the generated"):
        config.elementwise(_bad)


def test_call_outlined_keeps_the_call():
    """The blocked variants call the serial loop through config.call_outlined, whose
    call is marked noinline: inlined into the parfor body the loop rematerialized its
    constants every iteration (the float64 sigmoid and the float32 GELU slope took 1.30x
    and 1.18x the serial loop's own time)."""
    import numba

    @numba.njit(cache=False)
    def add_one(a):
        for i in range(a.shape[0]):
            a[i] += 1.0

    @numba.njit(cache=False)
    def blocks(a):
        config.call_outlined(add_one, (a[:2],))
        config.call_outlined(add_one, (a[2:],))

    a = np.zeros(5)
    blocks(a)
    np.testing.assert_array_equal(a, 1.0)
    llvm = blocks.inspect_llvm(blocks.signatures[0])
    calls = [line for line in llvm.splitlines() if "call " in line and "add_one" in line]
    assert len(calls) == 2 and all("#" in line for line in calls)
    assert "noinline" in llvm
