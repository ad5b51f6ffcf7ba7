"""The softmax-CE and BatchNorm1d kernels of issue 7's table, each launched twice, for
timing the kernels alone under Nsight Compute on a GPU machine (the bench times whole
op calls, host-side launch path included):

    ncu --clock-control none --launch-skip 8 --launch-count 8 --section SpeedOfLight \
        --section Occupancy --section LaunchStats python3 bench/cuda_ncu_cases.py

(the first round of 8 kernels compiles and is skipped; the second is profiled).
"""
from numba import cuda

from fastnn.kernels.cuda.bench import batchnorm_call, softmax_ce_call


def main():
    cases = [softmax_ce_call(n, 1000) for n in (65536, 4096)]
    cases += [batchnorm_call(n, 1024) for n in (256, 4096, 65536)]
    for _ in range(2):
        for call in cases:
            call()
        cuda.synchronize()


if __name__ == "__main__":
    main()
