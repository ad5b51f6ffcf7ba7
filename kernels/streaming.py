"""When the CPU backends' elementwise kernels write their output with streaming stores.

An ordinary store reads the destination's cache line before writing it (read for
ownership), so y = f(x) over arrays that live in memory moves 3n bytes for the 2n it
needs, and a backward pass out = g * f'(s) moves 4n for 3n. A streaming (non-temporal)
store writes whole lines to memory without that read, as glibc's memcpy does for large
copies; the lines it writes are not left in the cache, which is a loss when the next
op reads the output while it would still be cached. Both backends therefore compute
each block into a small L1-resident tile and stream the tile out, only for outputs of
at least ``min_bytes()``.

Measured on the 2-core Xeon (Emerald Rapids, 2 MB L2 a core, 2 threads, Cython
backend, interleaved): ReLU over 16M float32 values 7.0 -> 4.4 ms (50% -> 79% of the
copy ceiling), hardtanh 6.7 -> 4.6 ms, their backward passes 9.1 -> 7.0 and 8.5 ->
6.5 ms; the transcendental ones (sigmoid, GELU, mish, ...) are compute-bound there and
moved by less than the noise. ReLU followed by a parallel read of its output, plain
stores / streamed: 8 MB 0.59 / 0.90 ms, 16 MB 1.38 / 1.78, 24 MB 2.43 / 2.61, 32 MB 4.37
/ 3.86, 64 MB 10.1 / 8.5 ms: the crossover is between 24 and 32 MB of output, hence
the default. ``FASTNN_STREAM_MIN_BYTES`` sets another (0: always; a huge value: never).
"""
import os
import platform

DEFAULT_MIN_BYTES = 32 * 2**20

# The Numba variant's stores are LLVM non-temporal stores and the Cython one uses SSE2+
# intrinsics: both measured on x86-64 only, so elsewhere nothing streams. (Also read by
# numba_cpu/flush.py, whose MXCSR exists on x86-64 only.)
X86_64 = platform.machine().lower() in ("x86_64", "amd64")

_min_bytes = None
_listeners = []


def _from_environment():
    value = os.environ.get("FASTNN_STREAM_MIN_BYTES")
    if value is None:
        return DEFAULT_MIN_BYTES if X86_64 else 1 << 62
    try:
        nbytes = int(value)
    except ValueError:
        raise ValueError(f"FASTNN_STREAM_MIN_BYTES must be an integer number of bytes, "
                         f"got {value!r}") from None
    if nbytes < 0:
        raise ValueError(f"FASTNN_STREAM_MIN_BYTES must be >= 0, got {nbytes}")
    return nbytes


def min_bytes():
    """Outputs of at least this many bytes are written with streaming stores."""
    global _min_bytes
    if _min_bytes is None:
        _min_bytes = _from_environment()
    return _min_bytes


def set_min_bytes(nbytes):
    """Set the threshold for both backends (tests use 0 to run the streamed variants on
    small arrays); None restores the default (or the environment's). Returns the
    previous value."""
    global _min_bytes
    previous = min_bytes()
    if nbytes is not None and (not isinstance(nbytes, int) or nbytes < 0):
        raise ValueError(f"set_min_bytes: expected an int >= 0 or None, got {nbytes!r}")
    _min_bytes = _from_environment() if nbytes is None else nbytes
    for listener in _listeners:
        listener(_min_bytes)
    return previous


def on_change(listener):
    """Call listener(nbytes) now and whenever the threshold changes (the Cython backend
    keeps a copy in C, read without the GIL)."""
    _listeners.append(listener)
    listener(min_bytes())
