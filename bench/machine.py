"""What the numbers were measured on: CPU, cores, library versions, thread counts."""
import os
import platform


def cpu_model():
    """The CPU model name from /proc/cpuinfo (or platform.processor() elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version(module_name):
    try:
        module = __import__(module_name)
    except ImportError:
        return "not installed"
    return getattr(module, "__version__", "unknown")


def blas_info():
    """The BLAS library NumPy uses and its thread count, from threadpoolctl."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown"
    import numpy  # noqa: F401  (loads the BLAS so threadpoolctl can see it)
    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    return ", ".join(f"{p.get('internal_api')} {p.get('version')} ({p.get('num_threads')} threads)"
                     for p in pools) or "unknown"


def _linear_products(fastnn):
    """The BLAS of the compiled backends' Linear products (fastnn/mkl_blas.py)."""
    for name in ("cython", "numba"):
        if name in fastnn.backends():
            return fastnn.backend_info(name).get("blas", "unknown")
    return "unknown"


def machine_info():
    """A flat dict of strings describing this machine and the software measured."""
    import fastnn
    from fastnn import threads
    info = {
        "cpu": cpu_model(),
        "logical_cores": str(os.cpu_count()),
        "python": platform.python_version(),
        "numpy": _version("numpy"),
        "numba": _version("numba"),
        "cython": _version("Cython"),
        "scipy": _version("scipy"),
        "torch": _version("torch"),
        "blas": blas_info(),
        "linear_products": _linear_products(fastnn),
        "fastnn_backends": ", ".join(fastnn.backends()),
        "fastnn_threads": str(threads.get_num_threads()),
    }
    try:
        import numba
        info["numba_threading_layer"] = _numba_threading_layer(numba)
    except ImportError:
        pass
    try:
        import torch
        info["torch_threads"] = str(torch.get_num_threads())
    except ImportError:
        pass
    return info


def _numba_threading_layer(numba):
    """The threading layer numba's parallel kernels run on ('omp', 'tbb', 'workqueue'):
    known once a parallel kernel has run, which a tiny one makes sure of. Where that
    fails, 'unknown', with the setting when one was chosen (numba.config.THREADING_LAYER;
    its 'default' is no layer's name, and the report had shown it as one)."""
    try:
        return numba.threading_layer()
    except ValueError:   # (no parallel kernel has run in this process yet)
        pass
    try:
        import numpy as np

        @numba.njit(parallel=True, cache=False)
        def touch(a):
            for i in numba.prange(a.shape[0]):
                a[i] = i
        touch(np.zeros(4))
        return numba.threading_layer()
    except Exception:   # (whatever numba raises: the report still renders)
        setting = str(numba.config.THREADING_LAYER)
        return "unknown" if setting == "default" else f"unknown (set: {setting})"
