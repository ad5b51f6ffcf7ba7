"""Output sizes of sliding-window ops (convolution, pooling), PyTorch's rules, for every
backend and for fastnn.ops' checks.

Along one axis of length ``size`` with ``padding`` on both sides, windows of ``kernel``
cells start every ``stride`` cells. Floor mode keeps the windows that fit inside the
padded axis. Ceil mode (pooling's ``ceil_mode=True``) adds one more when the last
stride leaves a remainder, the window then running past the padding, but never one that
would start in the right-hand padding: every window holds at least one input cell.

The compiled depthwise kernels' stride phases (``phase_layout``) are laid out here
too, once for both CPU backends, and the test for their 2x2 max-pool kernel
(``is_2x2_pool``).
"""
import numpy as np

from .scratch import scratch


def window_out_size(size, kernel, stride, padding, ceil_mode=False, dilation=1):
    """The number of windows along one axis (may be < 1 when the kernel does not fit);
    a dilated window spans dilation * (kernel - 1) + 1 cells."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if not ceil_mode:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


def pool_out_shape(shape, kernel_size, stride, padding, ceil_mode=False, dilation=(1, 1)):
    """(N, C, H_out, W_out) of a 2-D window op on an (N, C, H, W) input; kernel_size,
    stride, padding, dilation: pairs."""
    n, c, h, w = shape
    return (n, c, window_out_size(h, kernel_size[0], stride[0], padding[0], ceil_mode,
                                  dilation[0]),
            window_out_size(w, kernel_size[1], stride[1], padding[1], ceil_mode, dilation[1]))


def is_2x2_pool(in_shape, out_shape, kernel_size, stride, padding, dilation=(1, 1)):
    """Whether a max pool is VGG's 2x2 window, stride 2, no padding, dilation 1, with
    every window inside the input (ceil mode can add one that runs past the edge): the
    CPU backends' specialised kernel then applies. Shapes: (N, C, H, W) in and out."""
    return (tuple(kernel_size) == (2, 2) and tuple(stride) == (2, 2)
            and tuple(padding) == (0, 0) and tuple(dilation) == (1, 1)
            and 2 * out_shape[2] <= in_shape[2] and 2 * out_shape[3] <= in_shape[3])


#: the widest window the tiling average-pool kernels take: a loop over a row's windows,
#: tap by tap, beats a loop over each window's taps while windows are narrow (2x2 4x
#: faster, 1 thread), not for a global pool's one wide window (7x7: 3x slower)
TILING_POOL_MAX_WIDTH = 3


def is_tiling_pool(in_shape, out_shape, kernel_size, stride, padding):
    """Whether an average pool's windows tile its input and are narrow: the stride is
    the window, at most TILING_POOL_MAX_WIDTH wide, no padding, every window inside the
    input (ceil mode can add one that runs past the edge). The CPU backends' tiling
    kernels then read or write each cell once, rows at a time. Shapes: (N, C, H, W) in
    and out."""
    (kh, kw) = kernel_size
    return (tuple(stride) == (kh, kw) and kw <= TILING_POOL_MAX_WIDTH
            and tuple(padding) == (0, 0)
            and kh * out_shape[2] <= in_shape[2] and kw * out_shape[3] <= in_shape[3])


def phase_layout(out_hw, kernel_size, stride):
    """(hq, wq, offsets) of the stride phases the compiled depthwise kernels split a
    padded plane into (phase (a, b): its cells (r sH + a, s sW + b), stored at
    (a sW + b) hq wq), for out_hw = (H_out, W_out): tap (i, j) reads phase (i % sH,
    j % sW) from row i // sH and column j // sW on, starting at offsets[i kW + j] (a
    (kH kW,) int64 scratch array of the calling thread); the outputs are computed wq to
    a row, and hq has one more row than the taps reach, for the last tap's read of the
    columns past W_out."""
    (ho, wo), (kh, kw), (sh, sw) = out_hw, kernel_size, stride
    hq, wq = ho + (kh - 1) // sh + 1, wo + (kw - 1) // sw
    offsets = scratch("depthwise_offsets", (kh * kw,), np.int64)
    i = np.arange(kh).reshape(kh, 1)
    j = np.arange(kw).reshape(1, kw)
    offsets.reshape(kh, kw)[...] = (((i % sh) * sw + j % sw) * (hq * wq) + (i // sh) * wq
                                    + j // sw)
    return hq, wq, offsets
