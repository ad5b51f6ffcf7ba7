"""Inverted dropout: zero each element with probability p in training, scale the rest."""
from .. import random as _random
from ..validation import check_bool, check_number
from .module import Module


class Dropout(Module):
    """y = x * mask, mask = 0 with probability p, else 1 / (1 - p); identity in eval mode.

    The mask comes from the backend's ``dropout_forward`` with a seed drawn from fastnn's
    global generator, so ``fastnn.manual_seed`` makes it reproducible on one backend.
    Input: any shape; output: same shape.
    """

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        check_number("Dropout", "p", p, low=0.0, high=1.0)
        self.p = float(p)
        # accepted for PyTorch code; the output is a fresh array
        self.inplace = check_bool("Dropout", "inplace", inplace)
        self._mask = None

    @property
    def passthrough(self):
        return not self.training or self.p == 0.0

    def _forward(self, x, buffered):
        if self.passthrough:
            self._mask = None
            return x
        mask = self._buffer("mask", x.shape, x.dtype)
        out = self._buffer("y", x.shape, x.dtype) if buffered else None
        y, self._mask = self._kernels().dropout_forward(x, self.p, _random.draw_seed(),
                                                          mask=mask, out=out)
        return y

    def _backward(self, grad_out, buffered, need_grad_in):
        if not need_grad_in:
            return None
        if self._mask is None:  # the forward was the identity
            return grad_out
        out = self._buffer("grad_in", grad_out.shape, grad_out.dtype) if buffered else None
        return self._kernels().dropout_backward(grad_out, self._mask, out=out)

    def extra_repr(self):
        return f"p={self.p}"
