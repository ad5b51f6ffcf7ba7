"""Linear layer forward and backward in plain NumPy: the specification."""
import numpy as np

from . import activations as _act

_FORWARD = {
    "identity": lambda z, slope: z,
    "relu": lambda z, slope: _act.relu(z, out=z),
    "leaky_relu": lambda z, slope: _act.leaky_relu(z, slope, out=z),
    "sigmoid": lambda z, slope: _act.sigmoid(z, out=z),
    "tanh": lambda z, slope: _act.tanh(z, out=z),
}


def _activation_grad(y, activation, negative_slope):
    """act'(z) written in terms of the output y = act(z)."""
    if activation == "relu":
        return (y > 0).astype(y.dtype)
    if activation == "leaky_relu":
        return np.where(y > 0, y.dtype.type(1), y.dtype.type(negative_slope))
    if activation == "sigmoid":
        return y * (1 - y)
    if activation == "tanh":
        return 1 - y * y
    raise ValueError(f"linear_backward: activation {activation!r} is not fusable")


def linear_forward(x, weight, bias=None, activation="identity", negative_slope=0.01, out=None):
    """y = act(x @ weight.T + bias).

    x: (N, in); weight: (out_features, in); bias: (out_features,) or None;
    out: (N, out_features) or None. Returns y: (N, out_features).
    """
    z = np.matmul(x, weight.T, out=out)
    if bias is not None:
        z += bias
    return _FORWARD[activation](z, negative_slope)


def linear_backward(grad_out, x, weight, y=None, activation="identity", negative_slope=0.01,
                    grad_weight=None, grad_bias=None, grad_in=None, need_grad_in=True,
                    scratch=None, accumulate=True):
    """Backward of linear_forward; accumulates grad_weight (out, in) and grad_bias (out,)
    (overwrites them when not accumulate).

    grad_out, y: (N, out_features); x: (N, in); weight: (out_features, in).
    Returns grad_in: (N, in) = g @ weight with g = grad_out * act'(y), or None.
    """
    if activation == "identity":
        g = grad_out
    elif activation == "relu":  # selected, as the standalone relu_backward
        g = _act.relu_backward(grad_out, y, out=scratch)
    else:
        g = np.multiply(grad_out, _activation_grad(y, activation, negative_slope), out=scratch)
    if grad_weight is not None:
        if accumulate:
            grad_weight += g.T @ x
        else:
            np.matmul(g.T, x, out=grad_weight)
    if grad_bias is not None:
        # summed in float64: NumPy adds the rows of a column one by one (its pairwise
        # sum runs along the contiguous axis only), which in float32 drifts as N grows
        # (2^20 rows: 4e-5 off, PyTorch's 2e-7)
        sums = g.sum(axis=0, dtype=np.float64)
        if accumulate:
            grad_bias += sums
        else:
            grad_bias[...] = sums
    if not need_grad_in:
        return None
    return np.matmul(g, weight, out=grad_in)
