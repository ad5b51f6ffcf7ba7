"""out= overlap checks on device arrays: refused as for NumPy arrays (by the bytes the
``__cuda_array_interface__`` spans), in place allowed where the op allows it, a host
array never meeting a device one."""
import numpy as np
import pytest

from fastnn.validation import check_no_overlap


class _Device:
    """A stand-in device array: the interface over a NumPy array's memory."""

    def __init__(self, a):
        self._a = a
        self.__cuda_array_interface__ = {
            "data": (a.__array_interface__["data"][0], False), "shape": a.shape,
            "typestr": a.dtype.str, "strides": None if a.flags.c_contiguous else a.strides,
            "version": 3}


def test_partial_overlap_refused():
    base = np.zeros(64, np.float32)
    with pytest.raises(ValueError, match="op: out shares memory with x"):
        check_no_overlap("op", [("out", _Device(base[8:40]))], [("x", _Device(base[:32]))])


def test_disjoint_and_adjacent_pass():
    base = np.zeros(64, np.float32)
    check_no_overlap("op", [("out", _Device(base[32:]))], [("x", _Device(base[:32]))])
    check_no_overlap("op", [("out", _Device(base[:0]))], [("x", _Device(base))])


def test_in_place_only_when_identical():
    base = np.zeros(64, np.float32)
    check_no_overlap("op", [("out", _Device(base[:32]))], [("x", _Device(base[:32]))],
                     in_place=(("out", "x"),))
    with pytest.raises(ValueError, match=r"in place\)"):
        check_no_overlap("op", [("out", _Device(base[:32]))], [("x", _Device(base[1:33]))],
                         in_place=(("out", "x"),))


def test_strided_span_and_host_device_pairs():
    base = np.zeros((8, 8), np.float32)
    column = _Device(base[:, 0])      # strided: spans rows 0..7 of the first column
    with pytest.raises(ValueError):
        check_no_overlap("op", [("out", _Device(base[3]))], [("x", column)])
    check_no_overlap("op", [("out", _Device(base))], [("x", base)])  # host vs device


def test_simulator_arrays_checked(monkeypatch):
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
    host = np.zeros(16, np.float32)
    with pytest.raises(ValueError, match="out shares memory with x"):
        check_no_overlap("op", [("out", FakeCUDAArray(host[4:]))],
                         [("x", FakeCUDAArray(host[:8]))])
