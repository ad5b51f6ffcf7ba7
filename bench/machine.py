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


# the /proc/cpuinfo flags the kernels' speed depends on, as the machine table names them
_EXTENSIONS = (("AVX2", ("avx2",)), ("FMA", ("fma",)),
               ("AVX-512", ("avx512f", "avx512bw", "avx512vl", "avx512_bf16", "avx512_fp16")),
               ("AMX", ("amx_tile", "amx_bf16", "amx_int8")))


def vector_extensions(cpuinfo="/proc/cpuinfo"):
    """The x86 vector extensions of the first CPU listed ('AVX2, FMA, AVX-512 (F, BW,
    VL), AMX (TILE, BF16)'; 'AVX2, FMA (no AVX-512)'), 'unknown' where not known:
    README's numbers depend on them (numba's 512-bit loops, MKL's AMX), and a CPU model
    name does not say (a virtual machine shows 'Intel(R) Xeon(R) Processor')."""
    try:
        with open(cpuinfo) as f:
            flags = next((set(line.split(":", 1)[1].split()) for line in f
                          if line.startswith("flags")), None)
    except OSError:
        flags = None
    if not flags:
        return "unknown"
    parts = []
    for name, names in _EXTENSIONS:
        present = [n for n in names if n in flags]
        if not present:
            continue
        if len(names) == 1:
            parts.append(name)
        else:
            prefix = names[0].split("_")[0].rstrip("f") if name == "AVX-512" else "amx"
            subsets = [n[len(prefix):].lstrip("_").upper() for n in present]
            parts.append(f"{name} ({', '.join(subsets)})")
    text = ", ".join(parts) or "none of AVX2, FMA, AVX-512, AMX"
    if "avx2" in flags and "avx512f" not in flags:
        text += " (no AVX-512)"
    return text


def l2_cache(cache_dir="/sys/devices/system/cpu/cpu0/cache"):
    """The L2 cache of one core as sysfs gives it ('2048K'), or 'unknown'."""
    try:
        for entry in sorted(os.listdir(cache_dir)):
            path = os.path.join(cache_dir, entry)
            with open(os.path.join(path, "level")) as f:
                if f.read().strip() != "2":
                    continue
            with open(os.path.join(path, "size")) as f:
                return f.read().strip()
    except OSError:
        pass
    return "unknown"


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
        "vector_extensions": vector_extensions(),
        "l2_cache": l2_cache(),
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
