/* Software prefetch for the elementwise kernels that spend several nanoseconds of
 * arithmetic on each cache line (the transcendental activations).
 *
 * On the 2-core Xeon (Emerald Rapids, KVM) the hardware prefetchers do not run far
 * enough ahead of such a loop: tanh-GELU over 16M float32 values took 9.7-10 ms, its
 * arithmetic (4.9 ms at 2 threads, in cache) plus the memory time (4.7 ms for ReLU)
 * with little overlap. Asking for the input 4096 values ahead, a line at a time while
 * the current lines are computed, overlapped the two: 6.5 -> 4.0 ms in a C loop with
 * 512-bit vectors, 9-10 -> 5.2 ms with 256-bit ones (prefetching the output as well
 * gained nothing; all of a block's lines at the block's start, 4.9 ms; the memory-bound
 * kernels, ReLU and the like, gain nothing and stream their output instead). The
 * numba backend's kernels/numba_cpu/prefetch.py is the twin.
 *
 * fnn_prefetch_values asks for a[i : min(i + m, n)] (values of size bytes each), a
 * line at a time; nothing at or past a's end n. */
#ifndef FASTNN_PREFETCH_H
#define FASTNN_PREFETCH_H

#include <stddef.h>

static inline void fnn_prefetch_values(const void* a, ptrdiff_t i, ptrdiff_t m, ptrdiff_t n,
                                       ptrdiff_t size) {
    const char* p = (const char*)a;
    ptrdiff_t stop = i + m < n ? i + m : n;
    for (ptrdiff_t byte = i * size; byte < stop * size; byte += 64)
        __builtin_prefetch(p + byte, 0, 3);
}

#endif
