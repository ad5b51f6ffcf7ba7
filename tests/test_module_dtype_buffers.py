"""Dtype conversions of a module keep its integer and bool buffers (PyTorch's .float(),
.double() and .to(dtype) convert floating-point tensors only)."""
import numpy as np
import pytest

from fastnn import nn


class _Pick(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)
        self.register_buffer("idx", np.array([3, 0], dtype=np.int64))
        self.register_buffer("mask", np.array([True, False, True, True]))
        self.register_buffer("scale", np.full(4, 0.5, np.float32))

    def forward(self, x):
        return self.lin(x)[:, self.idx] * self.mask[self.idx] * self.scale[self.idx]


@pytest.mark.parametrize("convert", [lambda m: m.double(), lambda m: m.to(np.float64),
                                     lambda m: m.type("torch.DoubleTensor"),
                                     lambda m: m.double().float()])
def test_integer_and_bool_buffers_keep_their_dtype(convert):
    model = convert(_Pick())
    want = model.lin.weight.data.dtype
    assert model.idx.dtype == np.int64 and model.mask.dtype == np.bool_
    assert model.scale.dtype == want
    out = model(np.ones((2, 4), want))
    assert out.shape == (2, 2) and out.dtype == want
    state = model.state_dict()
    assert state["idx"].dtype == np.int64 and state["mask"].dtype == np.bool_


def test_batchnorm_counter_stays_int64():
    bn = nn.BatchNorm1d(3).double()
    assert bn.running_mean.dtype == np.float64
    assert bn.state_dict()["num_batches_tracked"].dtype == np.int64


def test_a_0d_parameter_and_buffer_stay_0d_through_dtype_conversions():
    # (a learnable temperature: np.ascontiguousarray made it shape (1,))
    model = nn.Module()
    model.temperature = nn.Parameter(np.array(1.5, np.float32))
    model.register_buffer("scale", np.array(2.0, np.float32))
    model.temperature.grad = np.array(0.5, np.float32)
    model.double()
    assert model.temperature.shape == model.temperature.grad.shape == model.scale.shape == ()
    assert model.temperature.dtype == model.scale.dtype == np.float64
