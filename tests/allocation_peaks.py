"""tracemalloc's peak of one call: what the allocation tests measure a step with (its
peak sees every array allocated during the call, temporaries included, where a snapshot
comparison sees only what is still alive)."""
import tracemalloc


def peak_bytes(fn):
    """(fn()'s result, the most bytes allocated above the start while it ran)."""
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak - start


def peak_of_step(step):
    """peak_bytes of step() after three warm-up calls (buffers made, kernels compiled)."""
    for _ in range(3):
        step()
    return peak_bytes(step)[1]
