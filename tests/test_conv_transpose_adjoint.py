"""ConvTranspose1d/2d on the host run as the adjoint of a strided convolution (conv2d's
backward kernels, no spread input): forward, input, weight and bias gradients against
PyTorch on every backend, with stride, padding, output_padding, 1-D and unbatched
inputs, and gradients accumulating over two backwards."""
import numpy as np
import pytest
import torch

from fastnn import nn

CASES = [  # dims, in, out, kernel, stride, padding, output_padding, input shape, bias
    (2, 3, 4, 3, 2, 1, 1, (2, 3, 5, 6), True), (2, 3, 4, 4, 2, 1, 0, (2, 3, 5, 5), False),
    (2, 2, 5, 3, 3, 0, 2, (1, 2, 4, 3), True), (2, 2, 3, 2, 1, 0, 0, (2, 2, 4, 4), True),
    (2, 2, 3, 5, 2, 4, 1, (2, 2, 6, 7), True), (2, 3, 4, 3, 2, 1, 1, (3, 5, 6), True),
    (2, 3, 4, 1, 2, 0, 1, (2, 3, 4, 4), True), (1, 3, 4, 3, 2, 1, 1, (2, 3, 7), True),
    (1, 3, 4, 3, 2, 1, 1, (3, 7), False)]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_matches_torch_forward_and_every_gradient(backend, dtype, case):
    dims, cin, cout, k, s, p, op, shape, bias = case
    layer = getattr(nn, f"ConvTranspose{dims}d")(cin, cout, k, s, p, op, bias=bias, dtype=dtype)
    ref = getattr(torch.nn, f"ConvTranspose{dims}d")(
        cin, cout, k, s, p, op, bias=bias).to(getattr(torch, np.dtype(dtype).name))
    ref.load_state_dict({key: torch.tensor(v) for key, v in layer.state_dict().items()})
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    tx = torch.tensor(x, requires_grad=True)
    tol = dict(rtol=1e-9, atol=1e-10) if dtype == np.float64 else dict(rtol=2e-4, atol=2e-5)
    for _ in range(2):  # the second backward adds to the parameters' gradients
        y = layer(x)
        ty = ref(tx)
        np.testing.assert_allclose(y, ty.detach().numpy(), **tol)
        g = rng.standard_normal(y.shape).astype(dtype)
        tx.grad = None
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(layer.backward(g), tx.grad.numpy(), **tol)
    np.testing.assert_allclose(layer.weight.grad, ref.weight.grad.numpy(), **tol)
    if bias:
        np.testing.assert_allclose(layer.bias.grad, ref.bias.grad.numpy(), **tol)
