"""What a probe of per-step allocations found: ConvTranspose2d's backward inside a
Sequential allocated its input gradient every step (not kept as the layer's buffer), and
Embedding's forward took its rows into a temporary before copying them into its own
buffer. Measured with tracemalloc over one steady-state step, on the compiled backends (the NumPy
reference's kernels allocate their temporaries)."""

import numpy as np
import pytest

import fastnn
from allocation_peaks import peak_of_step
from fastnn import nn, optim


@pytest.mark.parametrize("backend", [b for b in fastnn.backends() if b in ("numba", "cython")])
def test_conv_transpose_backward_keeps_its_input_gradient_buffer(backend):
    rng = np.random.default_rng(0)
    batch = 64
    with fastnn.use_backend(backend):
        model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1),
                              nn.ConvTranspose2d(4, 4, 3, stride=2, padding=1,
                                                 output_padding=1),
                              nn.ReLU(), nn.Flatten(), nn.Linear(4 * 32 * 32, 10))
        loss_fn = nn.CrossEntropyLoss()
        opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        x = rng.standard_normal((batch, 3, 16, 16)).astype(np.float32)
        y = rng.integers(0, 10, batch)

        def step():
            opt.zero_grad()
            loss_fn(model(x), y)
            model.backward(loss_fn.backward(), need_grad_in=False)
            opt.step()
        input_grad_bytes = batch * 4 * 16 * 16 * 4   # ConvTranspose2d's input gradient
        assert peak_of_step(step) < input_grad_bytes // 2


def test_embedding_forward_writes_its_rows_straight_into_its_buffer():
    emb = nn.Embedding(100, 32)
    idx = np.random.default_rng(0).integers(0, 100, (64, 12))
    out_bytes = 64 * 12 * 32 * 4
    assert peak_of_step(lambda: emb._forward(idx, True)) < out_bytes // 4
    np.testing.assert_array_equal(emb._forward(idx, True), emb.weight.data[idx])
    with pytest.raises(IndexError, match="out of range"):
        emb(np.array([0, 100]))
