"""Output sizes of sliding-window ops (convolution, pooling), PyTorch's rules, for every
backend and for fastnn.ops' checks.

Along one axis of length ``size`` with ``padding`` on both sides, windows of ``kernel``
cells start every ``stride`` cells. Floor mode keeps the windows that fit inside the
padded axis. Ceil mode (pooling's ``ceil_mode=True``) adds one more when the last
stride leaves a remainder, the window then running past the padding, but never one that
would start in the right-hand padding: every window holds at least one input cell.

The compiled depthwise kernels' stride phases (``phase_layout``) are laid out here
too, once for both CPU backends, with their direct kernels' tap table (``tap_cells``)
and the shape tests that pick the CPU backends' specialised kernels (``is_2x2_pool``,
``is_3x3s2_pool``, ``is_3x3s1_pool``, ``is_tiling_pool``, ``is_plane_wide_window``,
``is_small_plane``, ``is_direct_depthwise``).
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
    """Whether a max or average pool is VGG's 2x2 window, stride 2, no padding, dilation
    1 (ceil mode allowed: on an odd H or W its last row or column of windows runs past
    the edge, one cell high or wide): the CPU backends' specialised kernels then apply.
    Shapes: (N, C, H, W) in and out."""
    return (tuple(kernel_size) == (2, 2) and tuple(stride) == (2, 2)
            and tuple(padding) == (0, 0) and tuple(dilation) == (1, 1)
            and 2 * out_shape[2] <= in_shape[2] + 1 and 2 * out_shape[3] <= in_shape[3] + 1)


def is_3x3s2_pool(kernel_size, stride, padding, dilation=(1, 1)):
    """Whether a max or average pool is ResNet's 3x3 window of stride 2, dilation 1,
    padding 0 or 1 (ceil mode allowed): the CPU backends' specialised kernels then
    apply."""
    return (tuple(kernel_size) == (3, 3) and tuple(stride) == (2, 2)
            and tuple(dilation) == (1, 1) and max(padding) <= 1 and min(padding) >= 0)


def is_3x3s1_pool(kernel_size, stride, padding, dilation=(1, 1)):
    """Whether a max pool is Inception's 3x3 window of stride 1, dilation 1, padding 0 or
    1: the CPU backends' 3x3 max-pool kernels (is_3x3s2_pool's) then apply."""
    return (tuple(kernel_size) == (3, 3) and tuple(stride) == (1, 1)
            and tuple(dilation) == (1, 1) and max(padding) <= 1 and min(padding) >= 0)


def exact_reciprocal(divisor, dtype):
    """1 / divisor when it is exact in ``dtype`` (a power of two whose reciprocal is a
    normal number), else 0.0: g * (1 / d) then rounds the same real number g / d does,
    so it is the same quotient bit for bit (the 2x2 average pools' default divisor 4),
    at a multiply's cost instead of a division's."""
    mantissa, _ = np.frexp(divisor)
    inverse = 1.0 / divisor
    if mantissa == 0.5 and inverse >= np.finfo(dtype).tiny:
        return inverse
    return 0.0


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


#: the most cells a plane may have for the CPU backends' small-plane max-pool backward
#: (flat indices, no slice or memset per plane): the general kernel's per-plane fixed
#: cost outweighs a small plane's work (numba, 1 thread, ns a value, general -> small:
#: 2x2 2.2 -> 0.8, 4x4 0.86 -> 0.66, 8x8 0.52 -> 0.32; 16x16 0.25 both)
SMALL_PLANE_MAX_CELLS = 64


def is_small_plane(shape):
    """Whether the (N, C, H, W) array's planes have at most SMALL_PLANE_MAX_CELLS cells."""
    return shape[2] * shape[3] <= SMALL_PLANE_MAX_CELLS


def is_plane_wide_window(in_shape, kernel_size):
    """Whether a tiling average pool's (is_tiling_pool) window is as wide as its input
    plane (W == kW, one window to a row band: a 2x2 plane pooled to 1x1): each window's
    cells are then one contiguous run of kH W cells."""
    return in_shape[3] == kernel_size[1]


def is_global_pool(in_shape, out_shape, kernel_size, padding):
    """Whether a pool has one window, the whole plane (global pooling, AdaptiveAvgPool2d(1)):
    a kH x kW = H x W window, no padding, a 1 x 1 output. The CPU backends' average pools
    then sum several planes at once, one plane to a lane. Shapes: (N, C, H, W) in and out."""
    return (tuple(out_shape[2:]) == (1, 1) and tuple(padding) == (0, 0)
            and tuple(kernel_size) == tuple(in_shape[2:]))


#: the most cells an input plane may have for the CPU backends' direct depthwise kernels
#: (no stride phases): a 1x1 or 2x2 plane (a CNN's last stages) paid a phase copy, a
#: row copy and kH kW short tap loops per plane for a few multiply-adds
DEPTHWISE_DIRECT_MAX_CELLS = 4


def is_direct_depthwise(in_shape):
    """Whether a depthwise convolution of the (N, C, H, W) input takes the CPU backends'
    direct kernels (tap_cells), its planes at most DEPTHWISE_DIRECT_MAX_CELLS cells (and
    not empty)."""
    return 0 < in_shape[2] * in_shape[3] <= DEPTHWISE_DIRECT_MAX_CELLS


def tap_cells(in_hw, out_hw, kernel_size, stride, padding):
    """(H_out W_out kH kW,) int64: the plane cell h W + w that tap (i, j) of output
    (oh, ow) reads, at index (oh W_out + ow) kH kW + i kW + j, or -1 where
    the tap falls in the zero padding (the direct depthwise kernels' table)."""
    (h, w), (ho, wo), (kh, kw), (sh, sw), (ph, pw) = (in_hw, out_hw, kernel_size, stride,
                                                      padding)
    r = (np.arange(ho) * sh - ph).reshape(ho, 1, 1, 1) + np.arange(kh).reshape(1, 1, kh, 1)
    s = (np.arange(wo) * sw - pw).reshape(1, wo, 1, 1) + np.arange(kw).reshape(1, 1, 1, kw)
    inside = (r >= 0) & (r < h) & (s >= 0) & (s < w)
    return np.where(inside, r * w + s, -1).astype(np.int64).reshape(-1)


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
