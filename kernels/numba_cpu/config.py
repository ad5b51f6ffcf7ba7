"""Numba conventions for every kernel of this backend, set once (as stumpy's config.py).

``kernel`` compiles a function twice from one body: a parallel version whose ``prange``
loops run on Numba's thread pool and a serial one for small inputs, where waking the
pool costs more than it saves. ``elementwise`` does the same for loops over 1-D arrays
of one length, with a parallel version that runs the serial one on blocks (see
``ElementwiseKernel``); ``update_kernel`` is that for the optimizer updates. All are
cached on disk, so a second process loads machine code instead of compiling.
"""
import contextlib
import inspect
import os
import stat
import tempfile
import threading
import types

import numba
import numpy as np
from llvmlite import ir
from numba.extending import intrinsic, overload

from fastnn import blas_pool as _blas_pool
from fastnn import mkl_blas as _mkl_blas
from fastnn import threads as _threads

from .. import prefetching as _prefetching
from .. import streaming as _streaming
from . import cache_lock as _cache_lock
from . import cache_stamp as _cache_stamp

def writable_dir(path):
    """True when files can be made in the directory path (made first if missing): a
    file is tried, as Numba's own check does (a read-only mount, another user's
    install)."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False


def private_dir(path):
    """True when path is (or is made as) a directory of this user's alone (mode 700):
    a cache in the shared temporary directory must not be one another user made first,
    since Numba's index files are pickles."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return False
    mine = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    return stat.S_ISDIR(st.st_mode) and mine and not st.st_mode & 0o077 and writable_dir(path)


def cache_dir_for(module_dir, environ, writable=writable_dir, private=private_dir):
    """Where the kernels' disk cache goes: (directory or None for Numba's default,
    caching on). NUMBA_CACHE_DIR when set; in a source checkout Numba's default, the
    ``__pycache__`` beside the kernels (``make clean-numba-cache`` empties it); for an
    installed package, or a checkout whose ``__pycache__`` cannot be written, the
    user's cache (``$XDG_CACHE_HOME`` or ``~/.cache``, then ``fastnn/numba``), else a
    private one (mode 700, this user's) in the temporary directory, so that nothing is
    written into site-packages (``pip uninstall`` leaves nothing behind) and a
    read-only install still caches. None of them usable: (None, False), compiled in
    memory each process. (The choice is Numba's NUMBA_CACHE_DIR, so it holds for the
    whole process.)"""
    if environ.get("NUMBA_CACHE_DIR"):
        return None, True
    checkout = os.path.exists(os.path.join(module_dir, os.pardir, os.pardir, "setup.py"))
    if checkout and writable(os.path.join(module_dir, "__pycache__")):
        return None, True
    base = environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    user_cache = os.path.join(base, "fastnn", "numba")
    if writable(user_cache):
        return user_cache, True
    shared = os.path.join(tempfile.gettempdir(), "fastnn-numba-" + str(
        os.getuid() if hasattr(os, "getuid") else "user"))
    if private(shared):
        return shared, True
    return None, False


_CACHE_DIR, _CACHING = cache_dir_for(os.path.dirname(os.path.abspath(__file__)), os.environ)
if _CACHE_DIR is not None:
    os.environ["NUMBA_CACHE_DIR"] = _CACHE_DIR  # numba.config re-reads the environment
    numba.config.CACHE_DIR = _CACHE_DIR

# Everything except nnan/ninf: NaN and inf must still propagate through every kernel.
FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}

# Division by zero gives inf/NaN as in NumPy instead of raising ZeroDivisionError: the
# raise path would be a branch in every loop with a division, and LLVM does not
# vectorize loops that can raise.
OPTIONS = {"cache": _CACHING, "fastmath": FASTMATH, "error_model": "numpy"}

# The same without reassociation, for elementwise kernels whose written order matters:
# the optimizer updates' (1 - beta2) g g, which PyTorch forms as ((1 - beta2) g) g, and
# LLVM under reassoc as (1 - beta2) (g g), inf in float32 from |g| > 1.8e19 (finite up to
# 5.8e20 the other way). An elementwise loop loses nothing by it.
ORDERED_OPTIONS = {**OPTIONS, "fastmath": FASTMATH - {"reassoc"}}
# ...and without contraction, for updates that add a product PyTorch rounds alone
# (RMSprop's buf.mul_(momentum).addcdiv_(...), ASGD's ax.add_(param.sub(ax).mul_(mu))):
# numba sets the function's flags on every instruction, an intrinsic's fadd too, so
# such a kernel writes each fused multiply-add it wants as optim._muladd.
UNFUSED_OPTIONS = {**OPTIONS, "fastmath": FASTMATH - {"reassoc", "contract"}}
# ...and, keeping contraction, without reciprocals ("arcp"), for an update whose
# divisions PyTorch rounds as divisions (NAdam's v / (1 - beta2^t) and its two terms
# over one denominator, which arcp turned into products by one reciprocal: 1,945 of
# 100,003 float32 values off torch.optim.NAdam after one step, Cython's 307)
DIVIDING_OPTIONS = {**OPTIONS, "fastmath": FASTMATH - {"reassoc", "arcp"}}

# Inputs with fewer elements than this run the serial variant. The OpenMP pool costs
# ~2 us to wake; below ~32K elements one core finishes an elementwise pass in that time.
PARALLEL_MIN = 1 << 15


def _prefer_512_bit_vectors():
    """On a CPU with AVX-512, let LLVM vectorize with 512-bit registers. For the Xeons
    that have it LLVM's tuning prefers 256-bit vectors (the clock drop of older ones);
    Cython's gcc build uses 512 there, and the numba kernels' compute-bound loops ran
    that much slower: on the 2-core Emerald Rapids, 1 thread, in cache, ns a value,
    256 -> 512-bit: sigmoid 0.59 -> 0.36, softplus 0.88 -> 0.62, GELU 0.80 -> 0.50.

    Numba takes target features for the whole process, so this sets them for the whole
    process (``NUMBA_CPU_FEATURES``: the host's features with ``-prefer-256-bit``), and
    only where Numba has compiled nothing yet and neither variable is set:
    ``NUMBA_CPU_FEATURES`` (the user's own choice) or ``FASTNN_NUMBA_512=0``."""
    if os.environ.get("FASTNN_NUMBA_512", "1") != "1" or "NUMBA_CPU_FEATURES" in os.environ:
        return False
    from llvmlite import binding as llvm
    from numba.core import registry
    if "_toplevel_target_context" in vars(registry.cpu_target):  # compiled already
        return False
    features = llvm.get_host_cpu_features().flatten()
    if "+avx512f" not in features.split(","):
        return False
    features += ",-prefer-256-bit"
    os.environ["NUMBA_CPU_FEATURES"] = features  # numba.config re-reads the environment
    numba.config.CPU_FEATURES = features
    return True


PREFERS_512_BIT = _prefer_512_bit_vectors()


def _own_copies_of_callees():
    """Each kernel runs its own copy of the functions it calls, in every process.

    Numba links a callee (another jitted function: ``serial`` in the generated block,
    flush and stream loops, a parfor's outlined body, Numba's own overloads) into its
    caller's module as a ``linkonce_odr`` copy and optimizes the caller's module again,
    copy included; in the object file the copy is a weak symbol. The JIT linker binds a
    weak symbol to the first definition the process loaded. In the process that
    compiles, that is the callee's own library (compiled first, optimized once); in a
    process that loads the caller from the disk cache, the caller's copy (optimized
    twice). Under fastmath the two need not round alike: the second pass fused the other
    product of ``b2 v + c2 g g`` into the FMA, or vectorized a reduction's remainder
    anew, so NAdam/RAdam, Adadelta and batch norm gave other bits from the cache (and,
    in a cached process, bits that depended on which kernel ran first). Made internal
    before the caller's module is optimized, the copies are the caller's own: the
    machine code that runs is the one the cache stores, in both processes. Only this
    backend's libraries (a function of ``kernels.numba_cpu`` in the module) are
    changed; a user's own jitted code keeps Numba's linkage."""
    from llvmlite import binding as ll
    from numba.core.codegen import CPUCodeLibrary
    # a private hook of Numba's: where a release lacks it, kernels still run (Numba's
    # own linkage, so cache-loaded bits may differ by an ulp), they are not refused
    optimize = getattr(CPUCodeLibrary, "_optimize_final_module", None)
    if optimize is None or not hasattr(ll, "Linkage"):
        return
    # linkonce_odr: Numba's copies of callees; weak_odr: a parfor's __gufunc__ wrapper
    _SHARED = (ll.Linkage.linkonce_odr, ll.Linkage.linkonce_any, ll.Linkage.weak_odr,
               ll.Linkage.weak_any)
    if getattr(optimize, "_fastnn_own_copies", False):
        return

    def _optimize_final_module(self):
        module = getattr(self, "_final_module", None)
        if module is None:
            return optimize(self)
        functions = list(module.functions)
        if any("9numba_cpu" in fn.name and not fn.is_declaration for fn in functions):
            # a parfor's wrapper library defines its __gufunc__ (weak_odr) for the caller
            # to link: kept there (internal, it was dropped and the wrapper left empty)
            wrapper = "_GufuncWrapper" in str(self.name)
            for fn in functions:
                if not fn.is_declaration and fn.linkage in _SHARED:
                    if not (wrapper and fn.name.startswith("__gufunc__")):
                        fn.linkage = ll.Linkage.internal
        return optimize(self)

    _optimize_final_module._fastnn_own_copies = True
    CPUCodeLibrary._optimize_final_module = _optimize_final_module


_own_copies_of_callees()

# concurrent compiles in several processes must not mix up the disk cache's entries
_cache_lock.install()
# nor may an edit of a helper module leave kernels built from its old source in it
_cache_stamp.install()

# Prefer OpenMP: the workqueue layer costs ~80 us per parallel region on this kind of
# machine (measured), OpenMP ~2 us. An explicit NUMBA_THREADING_LAYER still wins.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER_PRIORITY = ["omp", "tbb", "workqueue"]


# Numba's workqueue threading layer (an explicit NUMBA_THREADING_LAYER=workqueue, or
# where neither OpenMP nor TBB loads) runs one parallel region at a time: two Python
# threads launching at once abort the process ("Concurrent access has been detected").
# Parallel launches take turns until the layer in use is known, and afterwards only
# under workqueue (then one global read a launch).
_launch_lock = threading.RLock()
_launches_take_turns = True


def _launch(fn, *args):
    """fn(*args), a parallel variant's call, taking turns where the layer needs it."""
    global _launches_take_turns
    if not _launches_take_turns:
        return fn(*args)
    with _launch_lock:
        result = fn(*args)
        try:
            _launches_take_turns = numba.threading_layer() == "workqueue"
        except ValueError:   # (no parallel region ran: the layer is not chosen yet)
            pass
    return result


class Kernel:
    """One compiled loop in two flavours: ``k(size, *args)`` runs the parallel version
    when ``size >= PARALLEL_MIN``, else the serial one.

    The choice depends on the size only, never on the thread count: LLVM may vectorize
    a reduction differently in the two compiles, and results must not change with
    ``set_num_threads`` (one thread runs the parallel version on one thread)."""

    def __init__(self, fn, options=OPTIONS):
        self.options = options
        self.serial = _compile_serial(fn, options)
        self.parallel = self._compile_parallel(fn)
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__

    def _compile_parallel(self, fn):
        return numba.njit(parallel=True, **self.options)(fn)

    def variants(self):
        """[(compiled function, arguments it takes before the kernel's own)]."""
        return [(self.serial, ()), (self.parallel, ())]

    def compile_for(self, args):
        """Compile every variant (or load it from the disk cache) for the types of
        args, the arguments of a call."""
        for fn, prefix in self.variants():
            fn.compile(tuple(fn.typeof_pyval(a) for a in prefix + tuple(args)))

    def run_serial(self, *args):
        """The serial variant, whatever the size."""
        if _every_variant:
            self.compile_for(args)
        return self.serial(*args)

    def __call__(self, size, *args):
        if _every_variant:
            self.compile_for(args)
        if size >= PARALLEL_MIN and not _forked_from_gnu_omp:
            sync_threads()
            return _launch(self.parallel, *args)
        return self.serial(*args)


# Set inside compiling_every_variant()
_every_variant = False


@contextlib.contextmanager
def compiling_every_variant():
    """Within the block, each kernel call first compiles all the kernel's variants
    (serial, parallel, streamed) for its arguments' types, not only the one its size
    picks: fastnn/precompile.py runs each op once on small arrays and so compiles the
    code that large ones run too."""
    global _every_variant
    previous, _every_variant = _every_variant, True
    try:
        yield
    finally:
        _every_variant = previous


def kernel(fn):
    """Decorator: ``Kernel(fn)``."""
    return Kernel(fn)


def update_kernel(fn):
    """Decorator for the optimizer updates: an ``ElementwiseKernel`` compiled without
    reassociation (ORDERED_OPTIONS), each block run with subnormals flushed to zero
    (flush.py)."""
    return ElementwiseKernel(fn, options=ORDERED_OPTIONS, flush_denormals=True)


def unfused_update_kernel(fn):
    """``update_kernel`` compiled without contraction (UNFUSED_OPTIONS): a product is
    fused into an add only where the kernel calls optim._muladd."""
    return ElementwiseKernel(fn, options=UNFUSED_OPTIONS, flush_denormals=True)


def dividing_update_kernel(fn):
    """``update_kernel`` compiled without reciprocals (DIVIDING_OPTIONS): each division
    as written."""
    return ElementwiseKernel(fn, options=DIVIDING_OPTIONS, flush_denormals=True)


def sign_update_kernel(fn):
    """``update_kernel`` without the flush, for an update that steps by the signs of
    its values (Rprop): a subnormal gradient is a direction there, as in PyTorch, and
    its state holds no decaying buffer to flush."""
    return ElementwiseKernel(fn, options=ORDERED_OPTIONS)


# Values per block of an elementwise kernel's parallel variant: 16 KB of float32, so a
# call's overhead (~50 ns) is under 3% of the block's work even for ReLU.
ELEMENTWISE_BLOCK = 4096
# Values per sub-tile of a block, each preceded by the prefetch of its inputs one block
# (16 KB of float32) ahead: prefetch.py
PREFETCH_TILE = 512


def block_of(a, start, stop):
    """``a[start:stop]`` for an array, ``a`` itself for a scalar (compiled: see below)."""
    return a


@overload(block_of, jit_options=OPTIONS, inline="always")
def _block_of_overload(a, start, stop):
    if isinstance(a, numba.types.Array):
        return lambda a, start, stop: a[start:stop]
    return lambda a, start, stop: a


@intrinsic
def call_outlined(typingctx, fn, args):
    """fn(*args) for a jitted fn, its call marked noinline: the parallel variants call
    an elementwise kernel's serial loop through it. Inlined into Numba's parfor body,
    the loop kept none of its constants in registers: under the JIT's large code model
    each polynomial coefficient came back every iteration as an absolute address and a
    broadcast load (float64 sigmoid 64 instructions a vector against the serial loop's
    36; float32 GELU's slope 100 against 56), where called it runs the serial variant's
    own code (the same bits): one thread, 100352 values, CPU time, sigmoid64 235 ->
    181 us, GELU backward float32 119 -> 101 us."""
    if not (isinstance(fn, numba.types.Dispatcher)
            and isinstance(args, numba.types.BaseTuple)):
        return None
    inner = typingctx.resolve_function_type(fn, tuple(args.types), {})
    if inner is None:
        return None

    def codegen(context, builder, signature, llargs):
        items = [builder.extract_value(llargs[1], i) for i in range(len(args))]
        before = {id(i) for block in builder.function.blocks for i in block.instructions}
        result = context.get_function(fn, inner)(builder, items)
        calls = [i for block in builder.function.blocks for i in block.instructions
                 if id(i) not in before and isinstance(i, ir.CallInstr)
                 and isinstance(i.callee, ir.Function) and not i.callee.name.startswith("llvm.")]
        if len(calls) != 1:
            raise NotImplementedError(f"call_outlined: {len(calls)} calls for one")
        calls[0].attributes.add("noinline")
        return result
    return inner.return_type(fn, args), codegen


class ElementwiseKernel(Kernel):
    """A ``Kernel`` whose loop is elementwise over 1-D arrays of one length (its first
    argument is one of them; other arguments are scalars). The parallel variant runs the
    serial one on blocks of ``ELEMENTWISE_BLOCK`` values in a ``prange``, instead of
    the loop itself inside Numba's parallel function: there LLVM reloads the loop's
    constants from memory every iteration (broadcast loads of exp's polynomial
    coefficients), and sigmoid ran at 0.72 ns a value per thread against the serial
    loop's 0.50. The block split depends on the length only, never on the thread count.

    ``streams``: outputs past kernels/streaming.py's threshold are written with streaming
    stores (the memory-bound kernels). Otherwise the parallel variant prefetches each
    sub-tile's inputs one block ahead (prefetch.py), unless ``flush_denormals``: then the
    serial variant and every block run with subnormals flushed to zero (flush.py; the
    optimizer updates, ``update_kernel``)."""

    def __init__(self, fn, streams=False, options=OPTIONS, flush_denormals=False):
        self.streams = streams
        self.flush_denormals = flush_denormals
        super().__init__(fn, options)
        if flush_denormals:
            if streams:
                raise TypeError(f"elementwise kernel {fn.__name__}: streaming and "
                                f"flushing subnormals are not combined")
            # small inputs: the serial loop between flush_begin and flush_end (the
            # parallel variant wraps each block likewise)
            self.serial = _compile_flushed(fn, self.serial, options)
        self.streamed = None
        if streams:
            # a third variant for outputs past kernels/streaming.py's threshold: blocks
            # computed into an L1 tile and streamed out (the last parameter is the output)
            if list(inspect.signature(fn).parameters)[-1] != "out":
                raise TypeError(f"elementwise kernel {fn.__name__}: streaming needs the "
                                f"output as the last parameter, named 'out'")
            self.streamed = _compile_streamed(fn, self.serial, options)

    def _compile_parallel(self, fn):
        # (kernels/prefetching.py: not on AMD CPUs, where it slowed these kernels down)
        prefetch = not (self.streams or self.flush_denormals) and _prefetching.enabled()
        return _compile_blocked(fn, self.serial, prefetch=prefetch,
                                flush=self.flush_denormals, options=self.options)

    def variants(self):
        # the streamed variant takes the thread count first
        streamed = [] if self.streamed is None else [(self.streamed, (1,))]
        return super().variants() + streamed

    def __call__(self, size, *args):
        if (self.streamed is not None and size >= PARALLEL_MIN and not _forked_from_gnu_omp
                and args[-1].nbytes >= _streaming.min_bytes()):
            if _every_variant:
                self.compile_for(args)
            return _launch(self.streamed, sync_threads(), *args)
        return super().__call__(size, *args)   # Kernel's choice of parallel or serial


def elementwise(fn=None, *, streams=False, ordered=False):
    """Decorator: ``ElementwiseKernel(fn)``; ``@elementwise(streams=True)`` for a kernel
    whose output large enough is written with streaming stores (kernels/streaming.py:
    the memory-bound ones, a few arithmetic operations a value); ``ordered=True``
    compiles it without reassociation (ORDERED_OPTIONS), its products in the written
    order."""
    options = ORDERED_OPTIONS if ordered else OPTIONS
    if fn is None:
        return lambda f: ElementwiseKernel(f, streams, options)
    return ElementwiseKernel(fn, streams, options)


def _compile_serial(fn, options=OPTIONS):
    serial_fn = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                                   fn.__defaults__, fn.__closure__)
    # a distinct qualname gives the serial variant its own on-disk cache entry
    serial_fn.__qualname__ = fn.__qualname__ + "_serial"
    serial_fn.__module__ = fn.__module__
    return numba.njit(parallel=False, **options)(serial_fn)


# Names the generated variants use; a kernel parameter of one of these names would
# shadow it (a parameter ``b`` once met a loop index ``b``), so they are refused.
_GENERATED_NAMES = {"prange", "block_of", "serial", "call_outlined", "BLOCK", "SUB", "np",
                    "stream_store",
                    "fence", "prefetch_lines", "sub_", "sub_stop_", "flush_begin",
                    "flush_end", "csr_",
                    "threads_", "n_", "blocks_", "block_", "start_", "stop_", "thread_",
                    "nthreads_", "tiles_", "tile_"}


def _parameters(fn):
    params = list(inspect.signature(fn).parameters)
    clash = _GENERATED_NAMES.intersection(params)
    if clash:
        raise TypeError(f"elementwise kernel {fn.__name__}: parameter names "
                        f"{sorted(clash)} are taken by the generated parallel variants")
    return params


def _compile_blocked(fn, serial, prefetch, flush=False, options=OPTIONS):
    """``prange`` over blocks calling ``serial`` on each, generated for fn's parameters.
    With prefetch, each block runs in sub-tiles of ``PREFETCH_TILE`` values, every
    sub-tile's inputs one block ahead prefetched first (prefetch.py says why; the
    memory-bound kernels, which stream large outputs instead, gain nothing from it and
    do without). With flush, each block runs with subnormals flushed to zero (flush.py).
    The source is compiled under fn's file name so that Numba's disk cache (keyed by
    file, qualified name and line) can store it; the prefetching variant under its own
    name, so that the cache never hands one for the other (FASTNN_PREFETCH)."""
    from .flush import flush_begin, flush_end
    from .prefetch import prefetch_lines
    params = _parameters(fn)
    name = fn.__name__ + ("_prefetched_blocks" if prefetch else "_blocks")
    blocks = "".join(f"block_of({p}, sub_, sub_stop_), " for p in params)
    call = f"call_outlined(serial, ({blocks}))\n"
    if prefetch:
        body = ("        for sub_ in range(start_, stop_, SUB):\n"
                "            sub_stop_ = min(stop_, sub_ + SUB)\n"
                + "".join(f"            prefetch_lines({p}, sub_ + BLOCK, sub_stop_ + BLOCK)\n"
                          for p in params[:-1])
                + "            " + call)
    else:
        body = "        sub_, sub_stop_ = start_, stop_\n        " + call
    if flush:
        body = "        csr_ = flush_begin()\n" + body + "        flush_end(csr_)\n"
    source = (f"def {name}({', '.join(params)}):\n"
              f"    n_ = {params[0]}.shape[0]\n"
              f"    for block_ in prange((n_ + BLOCK - 1) // BLOCK):\n"
              f"        start_ = block_ * BLOCK\n"
              f"        stop_ = min(n_, start_ + BLOCK)\n"
              f"{body}")
    namespace = {"prange": numba.prange, "block_of": block_of, "serial": serial,
                 "call_outlined": call_outlined, "prefetch_lines": prefetch_lines,
                 "flush_begin": flush_begin, "flush_end": flush_end, "BLOCK": ELEMENTWISE_BLOCK,
                 "SUB": PREFETCH_TILE, "__name__": fn.__module__}
    return _compile_generated(fn, name, source, namespace, options)


def _compile_flushed(fn, serial, options):
    """``serial`` run with subnormals flushed to zero (flush.py), generated for fn's
    parameters and compiled without parallel loops."""
    from .flush import flush_begin, flush_end
    params = ", ".join(_parameters(fn))
    name = fn.__name__ + "_flushed"
    source = (f"def {name}({params}):\n"
              f"    csr_ = flush_begin()\n"
              f"    serial({params})\n"
              f"    flush_end(csr_)\n")
    namespace = {"serial": serial, "flush_begin": flush_begin, "flush_end": flush_end,
                 "__name__": fn.__module__}
    return _compile_generated(fn, name, source, namespace, options, parallel=False)


def _compile_generated(fn, name, source, namespace, options=OPTIONS, parallel=True):
    exec(compile(source, fn.__code__.co_filename, "exec"), namespace)
    generated = namespace[name]
    generated.__qualname__ = fn.__qualname__ + name[len(fn.__name__):]
    return numba.njit(parallel=parallel, **options)(generated)


def _compile_streamed(fn, serial, options=OPTIONS):
    """As ``_compile_blocked``, but each block is computed into a tile (one per thread,
    ``ELEMENTWISE_BLOCK`` values: L1-resident) and streamed out to ``out``
    (nt_store.py). Each thread takes a contiguous run of blocks; the blocks are the same
    as the other variants', so the values are too. Takes the thread count first
    (numba.get_num_threads inside a kernel would keep it out of the disk cache)."""
    from .nt_store import fence, stream_store
    params = _parameters(fn)
    inputs = "".join(f"block_of({p}, start_, stop_), " for p in params[:-1])
    name = fn.__name__ + "_streamed"
    source = (f"def {name}(threads_, {', '.join(params)}):\n"
              f"    n_ = {params[0]}.shape[0]\n"
              f"    blocks_ = (n_ + BLOCK - 1) // BLOCK\n"
              f"    nthreads_ = max(1, min(threads_, blocks_))\n"
              f"    tiles_ = np.empty((nthreads_, BLOCK), out.dtype)\n"
              f"    for thread_ in prange(nthreads_):\n"
              f"        for block_ in range(thread_ * blocks_ // nthreads_,\n"
              f"                            (thread_ + 1) * blocks_ // nthreads_):\n"
              f"            start_ = block_ * BLOCK\n"
              f"            stop_ = min(n_, start_ + BLOCK)\n"
              f"            tile_ = tiles_[thread_, :stop_ - start_]\n"
              f"            call_outlined(serial, ({inputs}tile_, ))\n"
              f"            stream_store(out[start_:stop_], tile_)\n"
              f"        fence()\n")
    namespace = {"prange": numba.prange, "block_of": block_of, "serial": serial,
                 "call_outlined": call_outlined, "BLOCK": ELEMENTWISE_BLOCK, "np": np,
                 "stream_store": stream_store, "fence": fence, "__name__": fn.__module__}
    return _compile_generated(fn, name, source, namespace, options)


def serial_kernel(fn):
    """For loops that are always small (per-channel or per-class vectors)."""
    return numba.njit(parallel=False, **OPTIONS)(fn)


helper = numba.njit(inline="always", **OPTIONS)
"""Per-element or per-row helpers called from kernels."""

_local = threading.local()

# Set in a child made by os.fork() (multiprocessing's 'fork') from a process where GNU
# OpenMP is loaded, when numba's threading layer is (or will be) 'omp': numba kills such
# a child with SIGTERM on its first parallel kernel ("fork() called from a process
# already using GNU OpenMP, this is unsafe"), whatever the thread count, and a layer
# started in the child would hang on the forked thread's OpenMP pool (fastnn/threads.py
# says why). The child runs the serial compiles instead (results within rounding of
# the parallel ones). 'workqueue' and 'tbb' layers keep running in parallel.
_forked_from_gnu_omp = False


def _after_fork_in_child():
    # also run on import, in a forked child that loads this backend only after the fork;
    # fastnn.threads' handler, registered before this one (after-fork handlers run in
    # registration order), has set _forked_openmp
    global _forked_from_gnu_omp
    try:
        layer = numba.threading_layer()
    except ValueError:  # not started yet: the child would start one (omp by preference)
        layer = numba.config.THREADING_LAYER
    if _threads._forked_openmp and layer not in ("tbb", "workqueue"):
        _forked_from_gnu_omp = True


_after_fork_in_child()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def sync_threads():
    """Numba's thread count is per calling thread: apply fastn's setting to this one.

    Returns the thread count in effect. Cheap when nothing changed (one attribute read).
    """
    if _forked_from_gnu_omp:
        return 1
    n = _threads.get_num_threads()
    if getattr(_local, "applied", None) != n:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
        _local.applied = n
    return min(n, numba.config.NUMBA_NUM_THREADS)


def info():
    """What the backend runs with, for ``fastnn.backend_info()``."""
    try:
        layer = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        layer = "not initialised (priority: %s)" % ",".join(numba.config.THREADING_LAYER_PRIORITY)
    return {"numba_version": numba.__version__, "threading_layer": layer,
            "fastmath": sorted(FASTMATH), "parallel_min_elements": PARALLEL_MIN,
            # the count this thread's next kernel runs with: fastnn's applied first, as
            # every kernel does (1 in a child forked after OpenMP loaded)
            "numba_num_threads": sync_threads(),
            "max_threads": numba.config.NUMBA_NUM_THREADS,
            # True where LLVM may use 512-bit vectors on AVX-512 (_prefer_512_bit_vectors)
            "vectors_512_bit": "-prefer-256-bit" in (numba.config.CPU_FEATURES or "").split(","),
            "blas": _linear_blas(),
            "blas_threads": _blas_pool.describe()}


def _linear_blas():
    from . import blas
    library = {"mkl": _mkl_blas.describe(), "numpy": "NumPy's OpenBLAS (ILP64)",
               "scipy": "SciPy's OpenBLAS"}[blas.library()]
    # (blas.conv_target: the convolutions go where Linear does on MKL, else to SciPy's)
    return library + (" for Linear and conv" if blas.on_mkl()
                      else " for Linear, SciPy's OpenBLAS for conv")
