"""The softmax-CE and BatchNorm1d kernels of issue 7's table, each launched twice, for
timing the kernels alone under Nsight Compute on a GPU machine (the bench times whole
op calls, host-side launch path included):

    ncu --clock-control none --launch-skip 8 --launch-count 8 --section SpeedOfLight \
        --section Occupancy --section LaunchStats python3 bench/cuda_ncu_cases.py

(the first round of 8 kernels compiles and is skipped; the second is profiled).
"""
import numpy as np
from numba import cuda

from fastnn.kernels.cuda import batchnorm as BN
from fastnn.kernels.cuda import losses as L


def main():
    rng = np.random.default_rng(0)
    cases = []
    for n in (65536, 4096):
        logits = cuda.to_device(rng.standard_normal((n, 1000)).astype(np.float32))
        labels = cuda.to_device(rng.integers(0, 1000, n))
        grad = cuda.device_array((n, 1000), np.float32)
        cases.append(lambda logits=logits, labels=labels, grad=grad:
                     L.softmax_cross_entropy(logits, labels, grad))
    for n in (256, 4096, 65536):
        c = 1024
        x = cuda.to_device(rng.standard_normal((n, c)).astype(np.float32))
        g = cuda.to_device(rng.standard_normal((n, c)).astype(np.float32))
        w, b = cuda.to_device(np.ones(c, np.float32)), cuda.to_device(np.zeros(c, np.float32))
        rm, rv = cuda.to_device(np.zeros(c, np.float32)), cuda.to_device(np.ones(c, np.float32))
        gw, gb = cuda.device_array(c, np.float32), cuda.device_array(c, np.float32)
        y, gin = cuda.device_array((n, c), np.float32), cuda.device_array((n, c), np.float32)
        mean, invstd = cuda.device_array(c, np.float32), cuda.device_array(c, np.float32)

        def fwd_bwd(x=x, g=g, w=w, b=b, rm=rm, rv=rv, gw=gw, gb=gb, y=y, gin=gin, mean=mean,
                    invstd=invstd):
            BN.batchnorm_forward(x, w, b, rm, rv, True, 0.1, 1e-5, False, y, mean, invstd)
            BN.batchnorm_backward(g, x, w, mean, invstd, True, False, gw, gb, gin)
        cases.append(fwd_bwd)
    for rep in range(2):
        for f in cases:
            f()
        cuda.synchronize()


if __name__ == "__main__":
    main()
