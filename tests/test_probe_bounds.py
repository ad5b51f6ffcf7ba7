"""The cython kernels at the shapes that broke the bounds-checked build, against the NumPy
reference backend.

``FASTNN_CYTHON_DEBUG=1 python setup.py build_ext --inplace`` (tests/test_cython_build.py)
turns boundscheck, wraparound and initializedcheck on and cdivision off. Run against that
build, these cases raised where the release build is right:

- IndexError at an empty extent: the kernels took ``&x[0, 0, 0]`` (or ``&x[b, c, 0, 0]``)
  of an array with a dimension of 0 to hand a raw pointer on. An address only: the loops
  behind it read and write nothing, so the release build's values are right (and an
  AddressSanitizer build of it reports nothing at these shapes). batchnorm_forward and
  _backward in eval mode with N = 0 or H = 0; conv2d_forward with C_in = 0 or H = 0
  (padding gives an output); conv2d_backward with C_out = 0; max_pool2d_forward with H = 0.
- ZeroDivisionError in avg_pool2d_forward for a window holding no input cell
  (count_include_pad=False over an input of height 0): 0/0, NaN in the release build and
  the reference, raised once cdivision is off.

Under the release build these run the same values checks, at shapes test_probe_degenerate
does not all reach (the backward ops on their own, every pooling flag at H = 0).
"""
import numpy as np
import pytest

import fastnn
from fastnn import ops

pytestmark = pytest.mark.skipif("cython" not in fastnn.backends(),
                                reason="the Cython extensions are not built")


def _both(case, *args):
    """case(*args) on the reference and the cython backend: dicts of arrays, equal (NaN
    equal to NaN)."""
    with fastnn.use_backend("numpy"), np.errstate(all="ignore"):
        ref = case(*args)
    with fastnn.use_backend("cython"), np.errstate(all="ignore"):
        got = case(*args)
    for name, r in ref.items():
        assert got[name].shape == r.shape and got[name].dtype == r.dtype, name
        np.testing.assert_allclose(got[name], r, rtol=1e-5, atol=1e-6, equal_nan=True,
                                   err_msg=name)


def _eval_batchnorm(shape, mean_only):
    """Eval-mode forward and backward. x: shape (N, C) or (N, C, H, W)."""
    c = shape[1]
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal(shape), rng.standard_normal(shape)
    w = None if mean_only else rng.uniform(0.5, 1.5, c)
    rm, rv = rng.standard_normal(c), None if mean_only else rng.uniform(0.5, 2, c)
    gw, gb = (None if mean_only else np.full(c, 0.25)), np.full(c, -0.5)
    y, mean, invstd = ops.batchnorm_forward(x, w, rng.standard_normal(c), rm, rv,
                                            training=False, mean_only=mean_only)
    grad_in = ops.batchnorm_backward(g, x, w, mean, invstd, training=False,
                                     mean_only=mean_only, grad_weight=gw, grad_bias=gb)
    out = {"y": y, "mean": mean, "grad_in": grad_in, "grad_b": gb}
    if not mean_only:
        out.update(invstd=invstd, grad_w=gw)
    return out


@pytest.mark.parametrize("mean_only", [False, True])
@pytest.mark.parametrize("shape", [(0, 3), (2, 3, 0, 4)])
def test_eval_batchnorm_with_an_empty_extent(shape, mean_only):
    # IndexError (axis 0, axis 2) at _batchnorm.pyx's &x[0, 0, 0] / &x[p // c, p % c, 0]
    _both(_eval_batchnorm, shape, mean_only)


def _conv(x_shape, w_shape, padding):
    """Forward, then backward into every gradient, bias included."""
    rng = np.random.default_rng(1)
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal(w_shape[0])
    y = ops.conv2d_forward(x, w, b, 1, padding)
    gw, gb = np.full(w_shape, 0.25), np.full(w_shape[0], -0.5)
    grad_in = ops.conv2d_backward(rng.standard_normal(y.shape), x, w, 1, padding, gw, gb)
    return {"y": y, "grad_in": grad_in, "grad_w": gw, "grad_b": gb}


@pytest.mark.parametrize("x_shape, w_shape, padding", [
    ((2, 0, 5, 5), (3, 0, 3, 3), 0),        # no input channel: y is the bias
    ((2, 2, 0, 3), (2, 2, 2, 1), (1, 0)),   # an input of height 0, padded to 2 rows
    ((2, 3, 5, 5), (0, 3, 3, 3), 1),        # no output channel
])
def test_conv2d_with_an_empty_extent(x_shape, w_shape, padding):
    # IndexError at _conv.pyx's &x[n0, 0, 0, 0] (_forward) and &grad_weight[0, 0, 0, 0],
    # &grad_out[n0, 0, 0, 0] (_backward)
    _both(_conv, x_shape, w_shape, padding)


def _pool(x_shape, ceil_mode, include):
    """Max and average pooling, kernel 2, stride 1, padding 1, forward and backward."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal(x_shape)
    y, idx = ops.max_pool2d_forward(x, 2, 1, 1, ceil_mode=ceil_mode)
    g = rng.standard_normal(y.shape)
    kw = {"count_include_pad": include, "ceil_mode": ceil_mode}
    return {"max": y, "idx": idx, "max_grad": ops.max_pool2d_backward(g, idx, x_shape),
            "avg": ops.avg_pool2d_forward(x, 2, 1, 1, **kw),
            "avg_grad": ops.avg_pool2d_backward(g, x_shape, 2, 1, 1, **kw)}


@pytest.mark.parametrize("include", [True, False])
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("x_shape", [(2, 1, 0, 4), (2, 1, 4, 0)])
def test_pooling_over_an_empty_extent(x_shape, ceil_mode, include):
    # IndexError at _conv.pyx's &x[b, ch, 0, 0] (_max_pool_fwd); with count_include_pad
    # False, ZeroDivisionError in _avg_pool_fwd (a window of no cell, NaN here)
    _both(_pool, x_shape, ceil_mode, include)
