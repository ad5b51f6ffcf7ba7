"""Reader for the IDX format of MNIST and Fashion-MNIST (plain or gzip-compressed).

An IDX file is: two zero bytes, a dtype code byte, a byte giving the number of
dimensions ``ndim``, ``ndim`` big-endian uint32 sizes, then the values in C order,
big-endian. See http://yann.lecun.com/exdb/mnist/ (bottom of the page).
"""
import gzip
import math
import os
import struct
import zlib

import numpy as np

# dtype code -> big-endian NumPy dtype
IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


class IDXError(ValueError):
    """A file is not a valid IDX file (bad magic, dtype code, dimensions or length)."""


def _read_bytes(path):
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == _GZIP_MAGIC:  # decided by content, so a misnamed file still reads
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise IDXError(f"{path}: corrupt gzip data ({exc})") from None
    return raw


def parse_idx(raw, name="<bytes>"):
    """Decode the bytes of an IDX file into a NumPy array of its native dtype.

    raw: bytes of the whole (decompressed) file. Returns an array of shape
    given by the header, in the machine's byte order.
    """
    if len(raw) < 4:
        raise IDXError(f"{name}: {len(raw)} bytes is too short for an IDX header (4 bytes)")
    zero, code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0:
        raise IDXError(f"{name}: bad IDX magic number 0x{raw[:4].hex()}: "
                       f"expected the first two bytes to be 0x0000")
    if code not in IDX_DTYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise IDXError(f"{name}: unknown IDX dtype code 0x{code:02X}; expected one of {known}")
    if ndim == 0:
        raise IDXError(f"{name}: IDX header declares 0 dimensions")
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise IDXError(f"{name}: truncated IDX header: {ndim} dimensions need "
                       f"{header_len} bytes, file has {len(raw)}")
    shape = struct.unpack(f">{ndim}I", raw[4:header_len])
    dtype = IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize  # Python ints: four uint32 sizes overflow int64
    got = len(raw) - header_len
    if got != expected:
        raise IDXError(f"{name}: IDX header gives shape {shape} of {dtype.name} "
                       f"({expected} data bytes) but the file holds {got} data bytes")
    data = np.frombuffer(raw, dtype=dtype, offset=header_len).reshape(shape)
    return data.astype(dtype.newbyteorder("="), copy=True)


def read_idx(path):
    """Read an IDX file (plain or .gz) into a NumPy array.

    path: file path. Returns an array whose shape is the header's dimensions
    (e.g. (60000, 28, 28) uint8 for MNIST images, (60000,) uint8 for labels).
    Raises FileNotFoundError if missing, IDXError if the content is not valid IDX.
    """
    path = os.fspath(path)
    return parse_idx(_read_bytes(path), name=path)
