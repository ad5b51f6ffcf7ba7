"""Two alternating output arrays that a Sequential lends its layers under no_grad.

With gradients disabled no layer keeps its input (``module.forget_forward``), so a
layer's output is needed only until the next layer has read it. A ``Sequential`` on the
host then lends each layer, in turn, one of two arrays it owns for the output the layer
would write into a buffer of its own (``Module._buffer("y", ...)``): the one that does not
hold the layer's input. A forward pass thus holds two intermediate arrays at most, as
PyTorch's does (it frees each once read), and reuses them call after call, where fresh
arrays would be allocated and page-faulted in every call (a loop of no_grad SmallCNN
calls at batch 64-1000 ran 1.2-1.6x the time with fresh intermediates).

What a layer keeps only for its backward (a max pool's indices, dropout's mask:
``Module._backward_buffer``), not needed once its forward has returned under no_grad, is
lent the same way, from one more array per kind. An output over ``SLOT_CAP_BYTES`` is not
kept (a fresh array, freed as the pass goes on), so a one-off prediction on a huge batch
leaves nothing big behind; and a forward whose outputs are far smaller than the slots
(small batches after a big one) drops them.
"""
import math
import threading

import numpy as np

from .. import device as _device

#: the largest output a slot holds (bigger ones are fresh arrays, not kept)
SLOT_CAP_BYTES = 256 << 20

_KEYS = ("lent_output_a", "lent_output_b")


class _Lending(threading.local):
    """The lending in progress in this thread: the slots and the module they are lent
    to (None, None outside one; class defaults, so reading them raises nothing)."""
    slots = None
    borrower = None


_LENT = _Lending()


def lent_output(module, shape, dtype):
    """The array lent to ``module`` for its output of this shape and dtype by the
    Sequential running it in this thread, or None when none is lent to it."""
    slots = _LENT.slots
    if slots is None or _LENT.borrower is not module:
        return None
    return slots.take(shape, dtype)


def lent_scratch(module, key, shape, dtype):
    """The array lent to ``module`` for what its forward keeps for the backward under
    ``key`` (``Module._backward_buffer``), or None when none is lent to it."""
    slots = _LENT.slots
    if slots is None or _LENT.borrower is not module:
        return None
    key = "lent_scratch_" + key
    if key not in slots.scratch_keys:
        slots.scratch_keys += (key,)
    return slots.take(shape, dtype, key)


class OutputSlots:
    """The output arrays of one no_grad forward of ``owner`` (a Sequential) in the calling
    thread. The two arrays live in the owner's per-thread buffers, as flat bytes."""

    __slots__ = ("owner", "avoid", "largest", "scratch_keys", "_saved")

    def __init__(self, owner):
        self.owner = owner
        self.avoid = None        # the input of the layer now running
        self.largest = 0         # the most bytes lent in this forward
        self.scratch_keys = ()   # the keys lent_scratch used in this forward
        self._saved = None

    def lend_to(self, borrower, x):
        """Lend for the step of ``borrower`` on input x (``with slots.lend_to(layer, x):``)."""
        self._saved = (_LENT.slots, _LENT.borrower)
        self.avoid = x
        _LENT.slots, _LENT.borrower = self, borrower
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _LENT.slots, _LENT.borrower = self._saved
        self.avoid = self._saved = None
        return False

    def take(self, shape, dtype, key=None):
        """(shape) array of dtype: with key None, in the output slot that does not hold
        the current input; else in the owner's array for that key."""
        nbytes = math.prod(shape) * np.dtype(dtype).itemsize
        if nbytes > SLOT_CAP_BYTES:
            return _device.namespace("cpu").empty(shape, dtype)
        self.largest = max(self.largest, nbytes)
        for key in _KEYS if key is None else (key,):
            slot = self.owner._kept_buffer(key)
            if slot is not None and np.may_share_memory(slot, self.avoid):
                continue
            if slot is None or slot.size < nbytes:
                slot = self.owner._buffer(key, (nbytes,), np.uint8)
            return slot[:nbytes].view(dtype).reshape(shape)
        # (only the two output slots are skipped for the input, which is one array)
        raise AssertionError("both output slots hold the layer's input")

    def trim(self):
        """After the forward: drop the arrays over 4 times the most this forward took
        (looked up by key: other threads may be adding theirs to the same dict)."""
        me, least = threading.get_ident(), 4 * max(self.largest, 4096)
        scratch = self.owner._scratch
        for key in _KEYS + self.scratch_keys:
            a = scratch.get((key, me))
            if a is not None and a.size > least:
                scratch.pop((key, me), None)
