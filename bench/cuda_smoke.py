"""A few cuda ops on a GPU, checked against NumPy, before bench/cuda_device_checks.sh
spends its minutes: which launch path and cuBLAS path work there.

    python bench/cuda_smoke.py [--no-values]

Runs ReLU (three calls: the first launches through numba, which compiles; the later ones
through the driver directly, kernels/cuda/launch.py), a Linear forward with bias and ReLU
(cuBLAS, or the numba GEMM, and the epilogue kernel) and softmax-cross-entropy, and
checks their values (not with --no-values: the stand-in driver of bench/fake_cuda runs
no kernels). Exit status 0 when all ran and matched, 1 otherwise, with the error. The
check script tries the default configuration, then cuBLAS through CuPy arrays
(FASTNN_CUDA_GEMM_DIRECT=0), then numba's launches too (FASTNN_CUDA_LAUNCH=numba), and
runs its stages with the first that passes, so that one broken fast path does not cost
the whole GPU session.
"""
import sys

import numpy as np


def main(argv=None):
    values = "--no-values" not in (sys.argv[1:] if argv is None else argv)
    import fastnn.kernels.cuda as C
    from fastnn.kernels.cuda import launch

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 40)).astype(np.float32)
    for _ in range(3):
        y = C.relu(x)
    w = rng.standard_normal((24, 40)).astype(np.float32)
    b = rng.standard_normal(24).astype(np.float32)
    z = C.linear_forward(x, w, b, "relu")
    labels = rng.integers(0, 24, 64)
    loss, grad = C.softmax_cross_entropy(z, labels)
    if values:  # (loose enough for a cuBLAS in TF32: a wrong launch gives garbage)
        np.testing.assert_array_equal(y, np.maximum(x, 0))
        np.testing.assert_allclose(z, np.maximum(x @ w.T + b, 0), rtol=1e-2, atol=1e-2)
        z = z.astype(np.float64)
        shifted = z - z.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        np.testing.assert_allclose(loss, -log_p[np.arange(64), labels].mean(), rtol=1e-4)
        expected = np.exp(log_p)
        expected[np.arange(64), labels] -= 1
        np.testing.assert_allclose(grad, expected / 64, rtol=1e-3, atol=1e-6)
    print(f"cuda smoke: ok ({'values checked' if values else 'values not checked'}); "
          f"launches {launch.counts}, {launch.describe()}; "
          f"gemm {C.backend_info()['gemm_detail']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
