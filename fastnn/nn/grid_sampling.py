"""Sampling grids, as torch.nn.functional's: affine_grid (the output pixel centres in
[-1, 1] mapped by a batch of affine matrices) and grid_sample (an input read at such
a grid: nearest, (bi/tri)linear or bicubic taps under the zeros, border or reflection
padding modes, with PyTorch's align_corners pixel conventions). Forward only, NumPy;
re-exported by fastnn.nn.functional."""
import warnings

import numpy as np

from .. import device as _device
from ..errors import NotImplementedValueError, RuntimeValueError
from ..validation import check_flag, check_host_float_array, int_items

__all__ = ["affine_grid", "grid_sample"]


def _align_default(where, align_corners):
    if align_corners is None:
        warnings.warn("Default grid_sample and affine_grid behavior has changed to "
                      "align_corners=False since 1.3.0. Please specify align_corners=True "
                      "if the old behavior is desired. See the documentation of grid_sample "
                      "for details.", stacklevel=3)
        return False
    return check_flag(where, "align_corners", align_corners)


def _linspace(n, align_corners, dtype):
    """PyTorch's base grid along one axis: n points over [-1, 1] (the pixel centres
    without align_corners); 0 for one point."""
    if n <= 1:
        return np.zeros(n, dtype)
    points = np.linspace(-1, 1, n, dtype=dtype)
    return points if align_corners else points * dtype((n - 1) / n)


def affine_grid(theta, size, align_corners=None):
    """The sampling grid of an affine map: (N, H, W, 2) (x, y) for theta (N, 2, 3) and
    size (N, C, H, W), or (N, D, H, W, 3) for theta (N, 3, 4) and size (N, C, D, H, W);
    the output pixel centres in [-1, 1] times theta (grid_sample's input)."""
    align_corners = _align_default("affine_grid", align_corners)
    t = check_host_float_array("affine_grid", "theta", theta)
    size = int_items(size)
    if not (isinstance(size, (tuple, list)) and all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in size)):
        raise TypeError(f"affine_grid: expected size to be a sequence of ints, got {size!r}")
    size = tuple(int(v) for v in size)
    if len(size) == 4:
        if t.ndim != 3 or t.shape[-2:] != (2, 3):
            raise ValueError(f"Expected a batch of 2D affine matrices of shape Nx2x3 for "
                             f"size {list(size)}. Got {tuple(t.shape)}.")
    elif len(size) == 5:
        if t.ndim != 3 or t.shape[-2:] != (3, 4):
            raise ValueError(f"Expected a batch of 3D affine matrices of shape Nx3x4 for "
                             f"size {list(size)}. Got {tuple(t.shape)}.")
    else:
        raise NotImplementedValueError(f"affine_grid only supports 4D and 5D sizes, for 2D "
                                       f"and 3D affine transforms, respectively. Got size "
                                       f"{size}.")
    spatial = size[2:]
    if align_corners and min(spatial) == 1:
        warnings.warn("Since version 1.3.0, affine_grid behavior has changed for unit-size "
                      "grids when align_corners=True. This is not an intended use case of "
                      "affine_grid. See the documentation of affine_grid for details.",
                      stacklevel=2)
    elif min(size) <= 0:
        raise ValueError(f"Expected non-zero, positive output size. Got {list(size)}")
    if t.shape[0] != size[0]:
        raise RuntimeValueError(
            f"affine_grid: theta's batch {t.shape[0]} does not match size's "
            f"{size[0]}")
    axes = [_linspace(n, align_corners, t.dtype.type) for n in spatial]
    mesh = list(np.meshgrid(*axes, indexing="ij"))  # (D,) H, W
    base = np.stack(mesh[::-1] + [np.ones_like(mesh[0])], axis=-1)  # x, y (, z), 1
    base = base.reshape(1, -1, len(spatial) + 1)
    with np.errstate(invalid="ignore", over="ignore"):   # (inf and NaN as PyTorch's)
        grid = base @ np.swapaxes(t, 1, 2)
    return _device.c_contiguous(grid.reshape((size[0],) + spatial + (len(spatial),)))


def _unnormalize(coord, size, align_corners):
    dt = coord.dtype.type
    if align_corners:
        return (coord + dt(1)) / dt(2) * dt(size - 1)
    return ((coord + dt(1)) * dt(size) - dt(1)) / dt(2)


def _reflect(coord, twice_low, twice_high):
    """PyTorch's reflect_coordinates: coord mirrored into [twice_low / 2, twice_high /
    2]."""
    dt = coord.dtype.type
    if twice_low == twice_high:
        return np.zeros_like(coord)
    low, span = dt(twice_low / 2), dt((twice_high - twice_low) / 2)
    coord = np.abs(coord - low)
    extra = np.fmod(coord, span)
    flips = np.floor(coord / span)
    return np.where(flips % 2 == 0, extra + low, span - extra + low)


def _padded_coordinate(coord, size, padding_mode, align_corners, scalar=False):
    """PyTorch's compute_coordinates: coord (in pixels) under the padding mode. Border
    and reflection put a NaN coordinate on pixel 0, as PyTorch's vectorised 2-D kernel
    (its clip of NaN). ``scalar``: as its scalar kernel (5-D input) instead, whose clip
    puts NaN on the last pixel and whose safe_downgrade_to_int_range then moves a
    coordinate still not finite or beyond int32 to -100, outside (a zero sample)."""
    dt = coord.dtype.type
    nan_at = dt(size - 1) if scalar else dt(0)
    if padding_mode == "reflection":
        coord = (_reflect(coord, 0, 2 * (size - 1)) if align_corners
                 else _reflect(coord, -1, 2 * size - 1))
    if padding_mode != "zeros":
        coord = np.where(np.isnan(coord), nan_at, np.clip(coord, dt(0), dt(size - 1)))
    if scalar:
        far = ~np.isfinite(coord) | (coord > dt(2 ** 31 - 2)) | (coord < dt(-2 ** 31))
        coord = np.where(far, dt(-100), coord)
    return coord


def _gather(x, taps, sizes):
    """x (N, C, *sizes) at integer taps (one (N, *out) array per axis): (N, C, *out),
    0 where a tap lies outside."""
    inside = np.ones(taps[0].shape, bool)
    flat = np.zeros(taps[0].shape, np.int64)
    for t, n in zip(taps, sizes):
        inside &= (t >= 0) & (t < n)
        flat = flat * n + np.clip(t, 0, n - 1)
    n, c = x.shape[:2]
    values = np.take_along_axis(x.reshape(n, c, -1), flat.reshape(n, 1, -1), axis=2)
    # a select, not a product with the mask: an inf or NaN pixel read for an outside tap
    # (its index clipped) must give 0 there, as PyTorch's skipped read does
    values = values.reshape((n, c) + taps[0].shape[1:])
    return np.where(inside[:, None], values, values.dtype.type(0))


def _cubic_coefficients(t):
    """PyTorch's cubic convolution weights (A = -0.75) of the 4 taps around t in [0, 1)."""
    dt = t.dtype.type
    a = dt(-0.75)

    def near(s):
        return ((a + dt(2)) * s - (a + dt(3))) * s * s + dt(1)

    def far(s):
        return ((a * s - dt(5) * a) * s + dt(8) * a) * s - dt(4) * a

    return [far(t + dt(1)), near(t), near(dt(1) - t), far(dt(2) - t)]


def grid_sample(input, grid, mode="bilinear", padding_mode="zeros", align_corners=None):
    """input (N, C, H, W) sampled at grid (N, H_out, W_out, 2) (x, y in [-1, 1]; or 5-D
    input and grid (N, D_out, H_out, W_out, 3)): mode 'bilinear', 'nearest' or 'bicubic'
    (4-D only), padding_mode 'zeros', 'border' or 'reflection', PyTorch's pixel
    conventions (align_corners). Output (N, C, *grid's spatial sizes)."""
    where = "grid_sample"
    if mode not in ("bilinear", "nearest", "bicubic"):
        raise ValueError(f"nn.functional.grid_sample(): expected mode to be 'bilinear', "
                         f"'nearest' or 'bicubic', but got: '{mode}'")
    if padding_mode not in ("zeros", "border", "reflection"):
        raise ValueError(f"nn.functional.grid_sample(): expected padding_mode to be 'zeros', "
                         f"'border', or 'reflection', but got: '{padding_mode}'")
    align_corners = _align_default(where, align_corners)
    x = check_host_float_array(where, "input", input)
    g = check_host_float_array(where, "grid", grid, dtype=x.dtype)
    dims = x.ndim - 2
    if x.ndim not in (4, 5) or g.ndim != x.ndim or g.shape[0] != x.shape[0] \
            or g.shape[-1] != dims:
        raise RuntimeValueError(
            f"grid_sampler(): expected 4D or 5D input and grid with the same "
            f"batch size and grid's last dimension the input's spatial rank, "
            f"got input of shape {list(x.shape)} and grid of shape "
            f"{list(g.shape)}")
    if mode == "bicubic" and dims == 3:
        raise RuntimeValueError("grid_sampler(): bicubic interpolation only supports 4D input")
    if 0 in x.shape[2:]:
        raise RuntimeValueError(f"grid_sampler(): expected input to have non-empty spatial "
                                f"dimensions, but input has sizes {list(x.shape)}")
    sizes = x.shape[2:]
    out_shape = x.shape[:2] + g.shape[1:-1]
    if 0 in out_shape:   # an empty batch, no channels or no sample points: PyTorch's empty
        return np.zeros(out_shape, x.dtype)
    # grid's last axis is (x, y[, z]): reversed, one coordinate per input axis
    coords = [_unnormalize(g[..., dims - 1 - axis], n, align_corners)
              for axis, n in enumerate(sizes)]
    with np.errstate(invalid="ignore"):
        if mode == "bicubic":
            y = _bicubic(x, coords, sizes, padding_mode, align_corners)
        else:
            coords = [_padded_coordinate(cd, n, padding_mode, align_corners, dims == 3)
                      for cd, n in zip(coords, sizes)]
            y = (_nearest(x, coords, sizes) if mode == "nearest"
                 else _linear_taps(x, coords, sizes))
    return _device.c_contiguous(y, x.dtype)


def _nearest(x, coords, sizes):
    taps = [np.rint(c).astype(np.int64) for c in coords]
    return _gather(x, taps, sizes)


def _linear_taps(x, coords, sizes):
    """(Bi/tri)linear: the weighted sum over the 2^dims corners around each point."""
    lows = [np.floor(c) for c in coords]
    fracs = [c - low for c, low in zip(coords, lows)]
    lows = [low.astype(np.int64) for low in lows]
    total = None
    for corner in np.ndindex(*(2,) * len(sizes)):
        weight = None
        for bit, frac in zip(corner, fracs):
            w = frac if bit else 1 - frac
            weight = w if weight is None else weight * w
        taps = [low + bit for low, bit in zip(lows, corner)]
        term = _gather(x, taps, sizes) * weight[:, None]
        total = term if total is None else total + term
    return total


def _bicubic(x, coords, sizes, padding_mode, align_corners):
    """Bicubic: 4 x 4 taps, each tap's integer coordinate under the padding mode."""
    lows = [np.floor(c) for c in coords]
    weights = [_cubic_coefficients(c - low) for c, low in zip(coords, lows)]
    total = None
    for i in range(4):
        for j in range(4):
            taps = []
            for low, k, n in zip(lows, (i, j), sizes):
                t = _padded_coordinate(low - 1 + k, n, padding_mode, align_corners)
                taps.append(np.floor(t).astype(np.int64) if padding_mode != "zeros"
                            else t.astype(np.int64))
            term = _gather(x, taps, sizes) * (weights[0][i] * weights[1][j])[:, None]
            total = term if total is None else total + term
    return total
