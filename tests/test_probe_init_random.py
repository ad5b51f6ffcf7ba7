"""nn.init's argument checks against torch.nn.init (torch 2.13): uniform_'s range, the
value constant_ converts to the array's dtype, sparse_'s std and the dtype of the
random fills. Each bad call raises what PyTorch raises (a RuntimeError, also a
ValueError in fastnn) and leaves the array as it was."""
import math

import numpy as np
import pytest

import fastnn
from fastnn import nn
from fastnn.errors import DtypeError
from fastnn.nn import init

torch = pytest.importorskip("torch")

TORCH_DTYPES = {np.float16: torch.float16, np.float32: torch.float32,
                np.float64: torch.float64, np.int8: torch.int8, np.uint8: torch.uint8,
                np.int32: torch.int32, np.int64: torch.int64, bool: torch.bool}


def _both(name, np_dtype, shape, *args):
    """The fastnn call's array (or its exception) and torch's, from arrays of 3s."""
    ours = np.full(shape, 3, np_dtype)
    theirs = torch.full(shape, 3, dtype=TORCH_DTYPES[np_dtype])
    results = []
    for module, target in ((init, ours), (torch.nn.init, theirs)):
        try:
            got = getattr(module, name)(target, *args)
        except Exception as error:  # noqa: BLE001 (compared below)
            results.append(error)
        else:
            assert got is target
            results.append(target if module is init else target.numpy())
    return ours, results


@pytest.mark.parametrize("np_dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("a,b", [
    (math.nan, 1.0), (0.0, math.nan), (-math.inf, math.inf), (0.0, math.inf),
    (-math.inf, 0.0), (-1e39, 0.0), (0.0, 7e4), (-3e38, 3e38), (-1e308, 1e308),
    (1.0, 0.0), (-2.0, 3.0), (0.5, 0.5), (-6e4, 0.0), (-3e38, 0.0)])
def test_uniform_range_checks_as_torchs(np_dtype, a, b):
    """PyTorch refuses bounds outside the dtype's range (NaN and infinities included) and
    b - a beyond it; fastnn drew from NumPy there: OverflowError (not a ValueError) for a
    NaN or infinite bound, infinities in float16 for bounds beyond its range."""
    ours, (mine, theirs) = _both("uniform_", np_dtype, (4, 5), a, b)
    if isinstance(theirs, Exception):
        assert isinstance(theirs, RuntimeError)
        assert isinstance(mine, RuntimeError) and isinstance(mine, ValueError), mine
        np.testing.assert_array_equal(ours, 3)      # untouched
    else:
        assert not isinstance(mine, Exception), mine
        assert np.isfinite(mine).all() and mine.min() >= a and mine.max() <= b


def test_fills_through_uniform_take_its_checks():
    w = np.zeros((3, 4), np.float32)
    for call in (lambda: init.xavier_uniform_(w, gain=math.inf),
                 lambda: init.xavier_uniform_(w, gain=math.nan),
                 lambda: init.kaiming_uniform_(w, a=math.nan)):
        with pytest.raises(RuntimeError, match="out of bounds"):
            call()
    np.testing.assert_array_equal(w, 0)


@pytest.mark.parametrize("np_dtype", list(TORCH_DTYPES))
@pytest.mark.parametrize("value", [300, -7, -300, 2.7, -2.7, -0.5, 1e20, 1e40, 3.5e38,
                                   -1e39, 7e4, 65520.0, math.inf, -math.inf, math.nan,
                                   True, 2 ** 63, -(2 ** 63), 0, np.float32(-3.7),
                                   np.int64(300), np.bool_(True), 3 + 0j, 1 + 2j])
def test_constant_converts_the_value_as_torchs_fill(np_dtype, value):
    """A value the dtype cannot hold is PyTorch's RuntimeError: fastnn's constant_ wrote
    inf (1e40 into float32) or raised NumPy's OverflowError (300 into uint8; NaN into
    int64), and refused the -7 that PyTorch wraps into uint8 (249)."""
    ours, (mine, theirs) = _both("constant_", np_dtype, (2, 3), value)
    if isinstance(theirs, Exception):
        assert isinstance(theirs, RuntimeError)
        assert isinstance(mine, RuntimeError) and isinstance(mine, ValueError), mine
        assert "without overflow" in str(mine)
        np.testing.assert_array_equal(ours, 3)
    else:
        assert not isinstance(mine, Exception), mine
        assert mine.dtype == np.dtype(np_dtype)
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize("value", [None, "2.5", [1.0], (1.0,)])
def test_constant_of_something_not_a_number_is_a_type_error_as_torchs(value):
    """None filled a float array with NaN, '2.5' was parsed and [1.0] broadcast;
    PyTorch's fill_ takes a number only (TypeError)."""
    with pytest.raises(TypeError):
        torch.nn.init.constant_(torch.zeros(2), value)
    w = np.zeros(2, np.float32)
    with pytest.raises(TypeError, match="init.constant_: expected val to be a number"):
        init.constant_(w, value)
    np.testing.assert_array_equal(w, 0)
    assert init.constant_(w, np.array(2.5)) is w    # a 0-d array is a number here
    np.testing.assert_array_equal(w, 2.5)


def test_constant_on_a_parameter_and_a_numpy_scalar():
    layer = nn.Linear(3, 2)
    with pytest.raises(RuntimeError, match="float32 without overflow"):
        init.constant_(layer.weight, np.float64(1e39))
    assert np.isfinite(layer.weight.data).all()
    assert init.constant_(layer.bias, np.float64(2.5)) is layer.bias
    np.testing.assert_array_equal(layer.bias.data, 2.5)


@pytest.mark.parametrize("std", [-1.0, math.nan])
def test_sparse_std_checked_as_torchs_normal(std):
    """std < 0 was NumPy's bare ValueError 'scale < 0', std NaN filled the array with
    NaN; PyTorch's normal_ raises its RuntimeError for both."""
    with pytest.raises(RuntimeError, match="std >= 0"):
        torch.nn.init.sparse_(torch.zeros(4, 3), 0.5, std)
    w = np.ones((4, 3), np.float32)
    with pytest.raises(RuntimeError, match="std >= 0") as info:
        init.sparse_(w, 0.5, std)
    assert isinstance(info.value, ValueError)
    np.testing.assert_array_equal(w, 1)


@pytest.mark.parametrize("name,args", [("uniform_", ()), ("normal_", ()),
                                       ("xavier_uniform_", ()), ("kaiming_normal_", ()),
                                       ("trunc_normal_", ()), ("orthogonal_", ()),
                                       ("sparse_", (0.5,))])
@pytest.mark.parametrize("np_dtype", [np.int64, np.int32, np.uint8, bool])
def test_random_fills_refuse_other_dtypes_with_a_dtype_error(name, args, np_dtype):
    """PyTorch's random fills raise NotImplementedError (a RuntimeError) for an integer or
    bool tensor; fastnn's was a bare TypeError, neither fastnn's ValueError convention nor
    PyTorch's type. It is DtypeError now, as everywhere else in fastnn."""
    with pytest.raises(RuntimeError):
        getattr(torch.nn.init, name)(torch.zeros(3, 4, dtype=TORCH_DTYPES[np_dtype]), *args)
    w = np.zeros((3, 4), np_dtype)
    with pytest.raises(DtypeError, match=f"init.*dtype {np.dtype(np_dtype).name}") as info:
        getattr(init, name)(w, *args)
    assert isinstance(info.value, (TypeError, ValueError, RuntimeError))
    with pytest.raises(TypeError, match="expected a Parameter or a float array, got list"):
        getattr(init, name)([[1.0, 2.0]], *args)


def test_prelu_init_the_dtype_cannot_hold_is_torchs_runtime_error():
    """PReLU(init=1e40) built a float32 weight of inf; PyTorch's fill_ refuses it."""
    with pytest.raises(RuntimeError, match="without overflow"):
        torch.nn.PReLU(2, init=1e40)
    with pytest.raises(RuntimeError, match="PReLU: init 1e[+]40 .* float32") as info:
        nn.PReLU(2, init=1e40)
    assert isinstance(info.value, ValueError)
    wide = nn.PReLU(2, init=1e40, dtype=np.float64)   # float64 holds it, as in PyTorch
    np.testing.assert_array_equal(wide.weight.data,
                                  torch.nn.PReLU(2, init=1e40, dtype=torch.float64).weight.data)
    np.testing.assert_array_equal(nn.PReLU(3, init=-0.5).weight.data,
                                  np.full(3, -0.5, np.float32))


@pytest.mark.parametrize("nonlinearity", [["relu"], {"relu": 1}, None, 3])
def test_calculate_gain_of_something_not_a_name_is_a_value_error(nonlinearity):
    """PyTorch compares the name against its list (ValueError 'Unsupported
    nonlinearity'); fastnn's dict lookup raised TypeError for a list or dict."""
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        torch.nn.init.calculate_gain(nonlinearity)
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.calculate_gain(nonlinearity)
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.kaiming_uniform_(np.empty((3, 4), np.float32), nonlinearity=nonlinearity)


@pytest.mark.parametrize("name,args", [("uniform_", ()), ("normal_", ()), ("constant_", (0.5,)),
                                       ("zeros_", ()), ("eye_", ()), ("xavier_normal_", ()),
                                       ("kaiming_uniform_", ()), ("trunc_normal_", ()),
                                       ("orthogonal_", ()), ("sparse_", (0.3,))])
def test_a_read_only_array_is_refused_by_name_before_any_draw(name, args):
    """NumPy's 'assignment destination is read-only' named nothing and came after the
    draw, which had moved fastnn's generator; fans of a read-only array still compute."""
    w = np.zeros((4, 6), np.float32)
    w.flags.writeable = False
    fastnn.manual_seed(3)
    with pytest.raises(ValueError, match=f"init.{name}: expected a writeable array"):
        getattr(init, name)(w, *args)
    assert fastnn.random.generator().random() == fastnn.manual_seed(3).random()
    assert init._calculate_fan_in_and_fan_out(w) == (6, 4)


def test_fans_of_any_array_and_xavier_errors_name_xavier():
    """PyTorch computes the fans of a tensor of any dtype; fastnn's refused an integer
    array, and xavier_*'s dtype error named 'init.fans'."""
    for dtype in (np.int64, bool, np.float16):
        assert init._calculate_fan_in_and_fan_out(np.zeros((3, 4, 5), dtype)) == \
            torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(3, 4, 5)) == (20, 15)
    for name in ("xavier_uniform_", "xavier_normal_"):
        with pytest.raises(DtypeError, match=f"init.{name}: expected a Parameter or a float"):
            getattr(init, name)(np.zeros((3, 4), np.int64))


@pytest.mark.parametrize("np_dtype,a,b", [(np.float32, 1e40, 1e41), (np.float32, 1e39, math.inf),
                                          (np.float32, -1e41, -1e40), (np.float16, 7e4, 8e4),
                                          (np.float16, -math.inf, -1e5)])
@pytest.mark.filterwarnings("ignore:mean is more than 2 std")
def test_trunc_normal_beyond_the_dtype_is_torchs_runtime_error(np_dtype, a, b):
    """trunc_normal_ took its bounds in the dtype: both infinite there, it filled the
    array with inf (not in [a, b]); PyTorch raises 'out of bounds' (its a, b finite)."""
    if math.isfinite(b):
        with pytest.raises(RuntimeError, match="out of bounds"):
            torch.nn.init.trunc_normal_(torch.zeros(4, dtype=TORCH_DTYPES[np_dtype]), 0, 1, a, b)
    w = np.zeros(4, np_dtype)
    with pytest.raises(RuntimeError, match="lies outside the range") as info:
        init.trunc_normal_(w, 0.0, 1.0, a, b)
    assert isinstance(info.value, ValueError)
    np.testing.assert_array_equal(w, 0)


@pytest.mark.parametrize("a,b", [(math.nan, 2.0), (-2.0, math.nan)])
def test_trunc_normal_nan_bound_is_torchs_runtime_error(a, b):
    with pytest.raises(RuntimeError, match="out of bounds"):
        torch.nn.init.trunc_normal_(torch.zeros(4), 0.0, 1.0, a, b)
    with pytest.raises(RuntimeError, match="expected [ab] to be a number") as info:
        init.trunc_normal_(np.zeros(4, np.float32), 0.0, 1.0, a, b)
    assert isinstance(info.value, ValueError)


@pytest.mark.filterwarnings("error")
def test_trunc_normal_bounds_wider_than_the_dtype_still_fill():
    """[-1e40, 1e40] in float32 holds every draw of N(0, 1), as in PyTorch (NumPy warned
    of an overflow as the bounds were cast)."""
    w = init.trunc_normal_(np.zeros(10000, np.float32), 0.0, 1.0, -1e40, 1e40)
    assert np.isfinite(w).all() and 0.95 < w.std() < 1.05


@pytest.mark.filterwarnings("error")
def test_numpy_scalar_arguments_are_taken_without_overflow_warnings():
    """Comparing np.float32 bounds with float64's range cast the range down to float32
    (NumPy's 'overflow encountered in cast', an error under -W error)."""
    w = np.zeros((40, 50))
    assert init.uniform_(w, np.float32(-0.5), np.float32(0.5)) is w
    assert -0.5 <= w.min() and w.max() <= 0.5 and w.std() > 0.2
    init.trunc_normal_(w, np.float32(0), np.float32(1), np.float32(-1), np.float32(1))
    assert -1 <= w.min() and w.max() <= 1
    init.kaiming_uniform_(w, a=np.float32(0.2))
    assert np.abs(w).max() <= math.sqrt(3) * init.calculate_gain("leaky_relu", 0.2) / math.sqrt(50)
    init.constant_(w, np.float16(2.5))
    np.testing.assert_array_equal(w, 2.5)
