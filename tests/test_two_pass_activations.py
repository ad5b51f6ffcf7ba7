"""GELU, mish and softplus (forward and backward where split) run in two passes per tile
of the output in the compiled backends (the first half of the formula into ``out``,
then the rest); in place, the same two passes run on a copy of each tile of the
overwritten input. An in-place call must give the out-of-place call's bits, at sizes
below and above the parallel threshold and across tile and block edges (a separate
one-pass loop for the in-place case did not on AVX-512: 1-ulp differences)."""
import numpy as np
import pytest

from fastnn import backend as registry

BACKENDS = [name for name in ("numba", "cython") if name in registry.backends()]
pytestmark = pytest.mark.skipif(not BACKENDS, reason="no compiled backend")


def _data(n, dtype):
    rng = np.random.default_rng(n)
    x = (rng.standard_normal(n) * 6).astype(dtype)
    x[:8] = [np.nan, np.inf, -np.inf, 0.0, 30.0, -100.0, 20.0, 5.6]
    return x, rng.standard_normal(n).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("n", [1000, 1025, 100003])
@pytest.mark.parametrize("op", ["gelu", "mish", "softplus"])
@pytest.mark.parametrize("name", BACKENDS)
def test_in_place_equals_out_of_place(name, op, n, dtype):
    be = registry.load(name)
    x, g = _data(n, dtype)
    expected = getattr(be, op)(x)
    in_place = x.copy()
    getattr(be, op)(in_place, out=in_place)
    np.testing.assert_array_equal(in_place, expected)
    expected_grad = getattr(be, op + "_backward")(g, x)
    for overwritten in ("grad_out", "x"):
        g2, x2 = g.copy(), x.copy()
        out = g2 if overwritten == "grad_out" else x2
        getattr(be, op + "_backward")(g2, x2, out=out)
        np.testing.assert_array_equal(out, expected_grad, err_msg=overwritten)


@pytest.mark.parametrize("name", BACKENDS)
def test_two_pass_matches_reference(name):
    be, ref = registry.load(name), registry.load("numpy")
    x, g = _data(100003, np.float32)
    for op in ("gelu", "mish", "softplus"):
        np.testing.assert_allclose(getattr(be, op)(x), getattr(ref, op)(x), rtol=2e-6,
                                   atol=2e-7, err_msg=op)
        np.testing.assert_allclose(getattr(be, op + "_backward")(g, x),
                                   getattr(ref, op + "_backward")(g, x), rtol=1e-5,
                                   atol=1e-6, err_msg=op + "_backward")


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba is not installed")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_numba_copy_into_copies_the_bits(dtype):
    # the in-place tiles' copy (numba_cpu._buffers.copy_into, a memcpy): every bit of a
    # slice of src (NaN payloads, -0, subnormals) into dst's head, the rest untouched
    import numba
    from fastnn.kernels.numba_cpu._buffers import copy_into

    @numba.njit
    def copy_slice(dst, src, start, stop):
        copy_into(dst, src[start:stop])

    uint = np.uint32 if dtype == np.float32 else np.uint64
    bits = np.random.default_rng(1).integers(0, np.iinfo(uint).max, 1100, dtype=uint)
    src = bits.view(dtype)
    dst = np.full(1024, 7, dtype)
    copy_slice(dst, src, 70, 1070)
    np.testing.assert_array_equal(dst[:1000].view(uint), bits[70:1070])
    assert (dst[1000:] == 7).all()
    with pytest.raises(numba.core.errors.TypingError):
        copy_slice(np.empty(8, np.int32), src, 0, 4)


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs both compiled backends")
@pytest.mark.parametrize("n", [1000, 100003])
def test_float32_gelu_same_bits_in_both_backends(n):
    # the numba backend evaluates log2 Phi(-u) and 2**r by Horner's rule in the Cython
    # backend's order (an Estrin form differed in 1 value of 4 by an ulp), so the two
    # give the same bits, below and above the parallel threshold
    x, _ = _data(n, np.float32)
    x[8:40] = np.linspace(-6, 6, 32, dtype=np.float32)
    numba_y, cython_y = (registry.load(name).gelu(x) for name in ("numba", "cython"))
    _assert_same_bits(numba_y, cython_y)


TWO_PASS_CALLS = {
    "gelu": lambda be, x, out=None: be.gelu(x, out=out),
    "softplus": lambda be, x, out=None: be.softplus(x, out=out),
    "softplus beta 2": lambda be, x, out=None: be.softplus(x, 2.0, 20.0, out=out),
    "softplus threshold 3": lambda be, x, out=None: be.softplus(x, 1.0, 3.0, out=out),
    "mish": lambda be, x, out=None: be.mish(x, out=out),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", list(TWO_PASS_CALLS))
@pytest.mark.parametrize("name", BACKENDS)
def test_two_pass_tiles_on_cache_lines_keep_the_bits(name, op, dtype):
    # the two-pass kernels' tiles (GELU, mish, softplus) start on the output's 64-byte
    # lines after a short first one: any offset of x and out from a line, and any
    # length, gives the same values
    be, call = registry.load(name), TWO_PASS_CALLS[op]
    x, _ = _data(40000, dtype)   # (past the parallel threshold, 32768)
    expected = call(be, x)
    buffer = np.empty(40100, dtype)
    for n in (5, 17, 1030, 40000):
        for x_offset in (0, 3):
            xs = np.empty(n + 16, dtype)[x_offset:x_offset + n]
            xs[:] = x[:n]
            for offset in range(16):
                out = buffer[offset:offset + n]
                call(be, xs, out=out)
                np.testing.assert_array_equal(out, expected[:n], err_msg=f"{n} {offset}")
        inplace = buffer[7:7 + n]
        inplace[:] = x[:n]
        call(be, inplace, out=inplace)
        np.testing.assert_array_equal(inplace, expected[:n])


def _assert_same_bits(a, b):
    """The same bits, -0 included; NaN where the other has NaN (its sign may differ)."""
    nan = np.isnan(a)
    np.testing.assert_array_equal(nan, np.isnan(b))
    uint = np.uint32 if a.dtype == np.float32 else np.uint64
    np.testing.assert_array_equal(a[~nan].view(uint), b[~nan].view(uint))


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("beta, threshold", [(1.0, 20.0), (2.0, 20.0), (1.0, 3.0),
                                             (2.0, 5.0)])
@pytest.mark.parametrize("name", BACKENDS)
def test_softplus_bits_do_not_depend_on_a_values_place(name, beta, threshold, dtype):
    # a whole-array call and one-value calls (x[i:i+1]) give the same bits: each value
    # goes through the loops' vector body in one and their scalar remainder in the
    # other (numba's float32 softplus rounded max(z, 0) + x Q(x) twice in its 512-bit
    # body, once in the remainder: 40 of 2000 values an ulp apart)
    be = registry.load(name)
    x, _ = _data(1000, dtype)
    whole = be.softplus(x, beta, threshold)
    one_by_one = np.concatenate([be.softplus(x[i:i + 1], beta, threshold)
                                 for i in range(x.size)])
    _assert_same_bits(whole, one_by_one)


@pytest.mark.skipif(len(BACKENDS) < 2, reason="needs both compiled backends")
@pytest.mark.parametrize("beta, threshold", [(1.0, 20.0), (2.0, 20.0), (0.5, 3.0)])
@pytest.mark.parametrize("n", [1000, 100003])
def test_float32_softplus_same_bits_in_both_backends(n, beta, threshold):
    # numba's exp and log1p are the Cython backend's (Horner's rule, max(z, 0) +
    # log1p(e) in one fma), so the two give the same bits (float64 did already)
    x, _ = _data(n, np.float32)
    x[8:40] = np.linspace(-90, 30, 32, dtype=np.float32)
    numba_y, cython_y = (registry.load(name).softplus(x, beta, threshold)
                         for name in ("numba", "cython"))
    _assert_same_bits(numba_y, cython_y)
