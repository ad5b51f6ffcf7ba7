"""fastnn.ops' out= buffers and the arrays it hands back, as a fuzz of every op on every
CPU backend (and the cuda backend under the simulator) found them: what it refused
outside its ValueError convention."""
import numpy as np
import pytest

import fastnn
from fastnn import ops
from fastnn.errors import DtypeError

BACKENDS = [b for b in ("numpy", "numba", "cython") if b in fastnn.backends()]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.int32, np.float64, np.float32])
def test_pooling_indices_of_another_dtype_are_a_dtype_error_and_nothing_is_written(
        backend, dtype):
    # an out= of the wrong dtype is a DtypeError (a ValueError), so is max pooling's
    # indices= buffer and max_pool2d_backward's indices (was a bare TypeError)
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6)).astype(np.float32)
    with fastnn.use_backend(backend):
        y, idx = ops.max_pool2d_forward(x, 2, 2)
        out = np.full(y.shape, 5.0, np.float32)
        bad = np.full(y.shape, 3, dtype)
        with pytest.raises(DtypeError, match="max_pool2d_forward: expected indices to be an "
                                             "int64 array, got " + np.dtype(dtype).name):
            ops.max_pool2d_forward(x, 2, 2, out=out, indices=bad)
        assert (out == 5).all() and (bad == 3).all()
        grad_in = np.full(x.shape, 7.0, np.float32)
        with pytest.raises(ValueError, match="max_pool2d_backward: expected indices"):
            ops.max_pool2d_backward(y, idx.astype(dtype), x.shape, grad_in=grad_in)
        assert (grad_in == 7).all()
        with pytest.raises(TypeError, match="got list"):   # no array: a TypeError only
            ops.max_pool2d_backward(y, idx.tolist(), x.shape)


def test_normalize_refuses_a_read_only_out_by_name_and_writes_in_place():
    from fastnn.nn import functional as F
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    out = np.zeros_like(x)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="normalize: expected out to be writeable"):
        F.normalize(x, out=out)
    expected = F.normalize(x)
    assert F.normalize(x, out=x) is x   # in place, as torch.nn.functional.normalize(out=)
    np.testing.assert_array_equal(x, expected)
