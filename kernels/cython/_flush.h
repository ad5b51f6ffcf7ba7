/* Subnormal numbers flushed to zero for the optimizer updates (FTZ and DAZ in MXCSR).
 *
 * A momentum buffer whose gradient stays 0 (a dead ReLU unit's weights) decays by
 * momentum every step and after ~800 steps holds subnormal numbers; an Intel core then
 * takes a microcode assist of ~150 cycles on every vector instruction that reads or
 * makes one. In the 784-100-10 MLP benchmark 17% of the hidden units were dead and 6%
 * of the momentum buffer subnormal: SGD over its 79510 parameters took 80-100 us
 * instead of 25 (torch.optim.SGD: 105 against 37 us). The updates therefore run with
 * subnormal results flushed to zero and subnormal inputs read as zero, as TensorFlow's
 * CPU kernels do (torch.set_flush_denormal(True) gives PyTorch the same); values off
 * by less than 1.2e-38 (float32; 2.2e-308 in float64). MXCSR belongs to the thread:
 * fnn_flush_begin sets both bits and returns the caller's register, fnn_flush_end puts
 * it back; each block of an update runs between the two on the thread that computes
 * it. Elsewhere than x86-64 both do nothing. The numba backend's
 * kernels/numba_cpu/flush.py is the twin. */
#ifndef FASTNN_FLUSH_H
#define FASTNN_FLUSH_H

#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#define FNN_FTZ_DAZ 0x8040u
static inline unsigned int fnn_flush_begin(void) {
    unsigned int csr = _mm_getcsr();
    _mm_setcsr(csr | FNN_FTZ_DAZ);
    return csr;
}
static inline void fnn_flush_end(unsigned int csr) { _mm_setcsr(csr); }
#else
static inline unsigned int fnn_flush_begin(void) { return 0; }
static inline void fnn_flush_end(unsigned int csr) { (void)csr; }
#endif

#endif
