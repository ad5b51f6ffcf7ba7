"""Every op of the table as a benchmark case: inputs, cost model and PyTorch twin.

A ``Case`` is one op (or one forward+backward pair) at one size. It builds its inputs
from a fixed seed, so every contender starts from the same values (each contender gets
its own copy, since some ops update arrays in place). It knows:

* ``fastnn(backend, arrays)``: a zero-argument callable running the op on a fastnn
  backend object (``fastnn.backend.load(name)``), with ``out=``/``grad=`` buffers
  passed in, as fastnn's layers call their kernels;
* ``torch(arrays)``: the same computation with PyTorch's own kernels (``torch.ops.aten``,
  the ones its layers and autograd call, with ``out=`` variants where they exist), or
  None where PyTorch has no twin;
* its cost: ``flops`` (products: linear, conv) or ``bytes`` (everything else: the
  minimum memory traffic, each array read or written once), from which the report
  derives GFLOP/s or GB/s and a percentage of the machine's ceiling.

All arrays are float32 (the library's default); labels and pooling indices int64.
"""
import numpy as np

from fastnn import optable

F32 = np.float32
SLOPE = 0.01
OMEGA = 30.0  # SIREN's first-layer frequency: the op's typical use
SEED = 1234

# The classic course sizes (784-100-10 at batch 128) and large ones (issue 3 and 5).
ELEMENTWISE = {"course": (128, 100), "large": (4096, 4096)}     # large: 16M values
ROWWISE = {"course": (128, 10), "large": (4096, 1000)}          # softmax, softmax-CE
BATCHNORM = {"course": (128, 100), "large": (256, 1024), "conv": (32, 128, 16, 16)}
LAYERNORM = {"course": (128, 100), "large": (4096, 1024)}        # (rows, features)
LINEAR = {"course": (128, 784, 100, "relu"), "large": (256, 1024, 1024, "leaky_relu")}
CONV = {"course": ((128, 1, 28, 28), 32, 3, 1, 1), "large": ((32, 64, 16, 16), 128, 3, 1, 1)}
POOL = {"course": ((128, 32, 28, 28), 2, 2, 0), "large": ((32, 64, 16, 16), 3, 2, 1)}
# depthwise conv (MobileNet's 3x3 blocks): input shape, multiplier, kernel, stride, padding
DEPTHWISE = {"course": ((64, 32, 28, 28), 1, 3, 1, 1),
             "large": ((32, 128, 28, 28), 1, 3, 2, 1)}
PARAMS = {"course": (100, 784), "large": (4096, 4096)}          # optimizer updates


class Case:
    """One op (``op``: a table name or a '<a>+<b>' pair) at one ``size`` label.

    build(rng) -> dict of NumPy arrays; fastnn_fn(be, arrays) -> callable;
    torch_fn(torch, tensors, arrays) -> callable or None; flops or bytes: the cost;
    torch_bytes: PyTorch's where its version moves other bytes (a bool dropout mask);
    torch_internal: arrays fastnn's call writes that PyTorch's keeps to itself (a work
    buffer, a pair's forward outputs), which ``check_torch`` does not look for.
    """

    def __init__(self, op, size, shape, build, fastnn_fn, torch_fn=None, flops=None,
                 nbytes=None, family=None, torch_bytes=None, torch_internal=()):
        self.op = op
        self.size = size
        self.shape = shape
        self.build = build
        self._fastnn_fn = fastnn_fn
        self._torch_fn = torch_fn
        self.flops = flops
        self.bytes = nbytes
        self.torch_bytes = nbytes if torch_bytes is None else torch_bytes
        self.torch_internal = frozenset(torch_internal)
        self.family = family or optable.op_spec(op.split("+")[0]).family

    @property
    def id(self):
        return f"{self.op}[{self.size}]"

    def arrays(self):
        """Fresh inputs, identical for every call (fixed seed)."""
        return self.build(np.random.default_rng(SEED))

    def fastnn(self, backend):
        """A callable running this case on a fastnn Backend object."""
        return self._fastnn_fn(backend, self.arrays())

    @property
    def has_torch(self):
        return self._torch_fn is not None

    def torch(self):
        """A callable running this case with PyTorch (the tensors share the arrays)."""
        import torch
        arrays = self.arrays()
        tensors = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                   for k, v in arrays.items()}
        return self._torch_fn(torch, tensors, arrays)

    def checked_call(self, contender, backend=None):
        """The callable timing this case on contender ('torch', or the name of a fastnn
        backend, loaded as ``backend``), once its results are checked as the suite
        checks them: PyTorch's by ``check_torch``, a backend's by ``check`` (the numpy
        reference itself is not checked). AssertionError where they differ."""
        if contender == "torch":
            self.check_torch()
            return self.torch()
        if contender != "numpy":
            self.check(backend)
        return self.fastnn(backend)

    def check(self, backend, reference=None):
        """Raise AssertionError unless ``backend``'s call, from this case's inputs,
        leaves what the NumPy reference's leaves: the arrays it returns and the inputs
        and buffers it writes in place (a broken kernel must not be timed as a fast
        one). At the case's own size, so the large cases check the parallel and
        streamed paths. Dropout is not checked: each backend draws its own mask.
        reference: the reference backend (default: ``fastnn.backend.load('numpy')``)."""
        if self.family == "dropout":
            return
        if reference is None:
            from fastnn import backend as backend_module
            reference = backend_module.load("numpy")
        expected, written = self._results(reference)
        got, _ = self._results(backend, written)
        assert len(got[0]) == len(expected[0]), (
            f"{self.id}: the call returned {len(got[0])} arrays, the NumPy reference "
            f"{len(expected[0])}")
        pairs = [(f"returned value {i}", a, b)
                 for i, (a, b) in enumerate(zip(got[0], expected[0]))]
        pairs += [(f"array {k!r}", got[1][k], expected[1][k]) for k in sorted(written)]
        for what, a, b in pairs:
            assert a.shape == b.shape, (
                f"{self.id}: {what} has shape {a.shape}, the NumPy reference's {b.shape}")
            np.testing.assert_allclose(
                a, b, **_tolerances(b),
                err_msg=f"{self.id}: {what} differs from the NumPy reference's")

    def check_torch(self, reference=None):
        """Raise AssertionError unless the PyTorch twin's call, from this case's inputs,
        gives every result the NumPy reference's gives (a wrong overload, layout or op
        must not be timed as PyTorch's speed). PyTorch returns fresh tensors where fastnn
        writes buffers, in its own order and with extras (a dropout mask, saved
        statistics): each array the reference returns or writes must equal, at
        ``check``'s tolerances, one of the arrays PyTorch writes in place or of the
        tensors it returns (``.numpy()``; of the same size, reshaped: layer_norm's (N, 1)
        statistics are fastnn's (N,)), but for the case's ``torch_internal`` arrays.
        dropout_forward is not checked: PyTorch draws its own mask. reference: as
        ``check``'s."""
        if self.op == "dropout_forward" or not self.has_torch:
            return
        if reference is None:
            from fastnn import backend as backend_module
            reference = backend_module.load("numpy")
        expected, written = self._results(reference)
        got, torch_written = self._torch_results()
        wanted = [(f"returned value {i}", b) for i, b in enumerate(expected[0])]
        wanted += [(f"array {k!r}", expected[1][k]) for k in sorted(written)
                   if k not in self.torch_internal]
        for what, b in wanted:
            candidates = [a.reshape(b.shape) for a in list(torch_written.values()) + got
                          if a.size == b.size]
            assert any(_close(a, b) for a in candidates), (
                f"{self.id}: PyTorch's call gives nothing equal to the NumPy reference's "
                f"{what} (shape {b.shape}): {len(candidates)} results of that size "
                f"differ")

    def _torch_results(self):
        """([arrays the PyTorch call returned, as NumPy], {name: array it wrote in
        place}) of one call on fresh inputs."""
        import torch
        arrays = self.arrays()
        before = {k: v.copy() for k, v in arrays.items() if isinstance(v, np.ndarray)}
        tensors = {k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v
                   for k, v in arrays.items()}
        returned = _as_arrays(_tensors_to_numpy(self._torch_fn(torch, tensors, arrays)()))
        written = {k: arrays[k] for k in before
                   if not np.array_equal(before[k], arrays[k], equal_nan=True)}
        return returned, written

    def _results(self, backend, written=None):
        """((returned arrays), {name: array after the call}) of one call on fresh
        inputs, and the names of the arrays the call wrote (or ``written`` as given)."""
        arrays = self.arrays()
        before = {k: v.copy() for k, v in arrays.items() if isinstance(v, np.ndarray)}
        returned = _as_arrays(self._fastnn_fn(backend, arrays)())
        if written is None:
            written = {k for k in before
                       if not np.array_equal(before[k], arrays[k], equal_nan=True)}
        return (returned, {k: arrays[k] for k in written}), written

    def extra_info(self, contender=None):
        """The row's description; its bytes those the contender moves."""
        return {"op": self.op, "size": self.size, "shape": self.shape, "family": self.family,
                "flops": self.flops,
                "bytes": self.torch_bytes if contender == "torch" else self.bytes}


def _as_arrays(result):
    """The arrays a case's call returned (numbers as 0-d arrays), flattened, copied."""
    if result is None:
        return []
    if isinstance(result, (tuple, list)):
        return [a for r in result for a in _as_arrays(r)]
    if isinstance(result, np.ndarray):
        return [result.copy()]
    if np.isscalar(result):
        return [np.array(result)]
    return []


def _tolerances(expected):
    """assert_allclose's rtol and atol against the reference's ``expected`` array: float32
    sums of many products, an entry near 0 by cancellation carrying the rounding of its
    terms, whose size is the array's."""
    scale = float(np.nanmax(np.abs(expected), initial=0.0)) if expected.size else 0.0
    return {"rtol": 1e-3, "atol": max(1e-4, 1e-5 * scale)}


def _close(got, expected):
    """Whether ``got`` equals ``expected`` at _tolerances (NaN where NaN)."""
    try:
        np.testing.assert_allclose(got, expected, **_tolerances(expected))
    except AssertionError:
        return False
    return True


def _tensors_to_numpy(result):
    """A PyTorch call's result with its tensors as NumPy arrays (tuples kept)."""
    if isinstance(result, (tuple, list)):
        return [_tensors_to_numpy(r) for r in result]
    if hasattr(result, "detach"):
        return result.detach().numpy()
    return result


def _normal(rng, shape):
    return rng.standard_normal(shape, dtype=F32)


def _shape_str(shape):
    return "x".join(str(s) for s in shape)


# --------------------------------------------------------------------- activations
def _aten():
    import torch
    return torch.ops.aten


# name -> (which forward value the backward takes, torch forward, torch backward)
# torch forward: f(torch, x, out); torch backward: f(torch, g, saved, out).
_UNARY = {
    "relu": ("y", lambda t, x, o: t.clamp_min(x, 0, out=o),
             lambda t, g, y, o: t.ops.aten.threshold_backward.grad_input(g, y, 0, grad_input=o)),
    "leaky_relu": ("x", lambda t, x, o: t.ops.aten.leaky_relu.out(x, SLOPE, out=o),
                   lambda t, g, x, o: t.ops.aten.leaky_relu_backward.grad_input(
                       g, x, SLOPE, False, grad_input=o)),
    "sigmoid": ("y", lambda t, x, o: t.sigmoid(x, out=o),
                lambda t, g, y, o: t.ops.aten.sigmoid_backward.grad_input(g, y, grad_input=o)),
    "tanh": ("y", lambda t, x, o: t.tanh(x, out=o),
             lambda t, g, y, o: t.ops.aten.tanh_backward.grad_input(g, y, grad_input=o)),
    "gelu": ("x", lambda t, x, o: t.ops.aten.gelu.out(x, out=o),
             lambda t, g, x, o: t.ops.aten.gelu_backward.grad_input(g, x, grad_input=o)),
    "gelu_tanh": ("x", lambda t, x, o: t.ops.aten.gelu.out(x, approximate="tanh", out=o),
                  lambda t, g, x, o: t.ops.aten.gelu_backward.grad_input(
                      g, x, approximate="tanh", grad_input=o)),
    # PyTorch's mish_backward has no out= variant: its result is a fresh tensor
    "mish": ("x", lambda t, x, o: t.ops.aten.mish.out(x, out=o),
             lambda t, g, x, o: t.ops.aten.mish_backward(g, x)),
    "hardsigmoid": ("x", lambda t, x, o: t.ops.aten.hardsigmoid.out(x, out=o),
                    lambda t, g, x, o: t.ops.aten.hardsigmoid_backward.grad_input(
                        g, x, grad_input=o)),
    "hardswish": ("x", lambda t, x, o: t.ops.aten.hardswish.out(x, out=o),
                  lambda t, g, x, o: t.ops.aten.hardswish_backward.out(g, x, out=o)),
    "silu": ("x", lambda t, x, o: t.ops.aten.silu.out(x, out=o),
             lambda t, g, x, o: t.ops.aten.silu_backward.grad_input(g, x, grad_input=o)),
    "softplus": ("x", lambda t, x, o: t.ops.aten.softplus.out(x, 1.0, 20.0, out=o),
                 lambda t, g, x, o: t.ops.aten.softplus_backward.grad_input(
                     g, x, 1.0, 20.0, grad_input=o)),
    "softsign": ("x", lambda t, x, o: t.div(x, t.add(t.abs(x), 1, out=o), out=o),
                 lambda t, g, x, o: t.div(g, t.add(t.abs(x), 1, out=o).square_(), out=o)),
    "hardtanh": ("x", lambda t, x, o: t.ops.aten.hardtanh.out(x, -1.0, 1.0, out=o),
                 lambda t, g, x, o: t.ops.aten.hardtanh_backward.grad_input(
                     g, x, -1.0, 1.0, grad_input=o)),
    "elu": ("x", lambda t, x, o: t.ops.aten.elu.out(x, 1.0, 1, 1, out=o),
            lambda t, g, x, o: t.ops.aten.elu_backward.grad_input(g, 1.0, 1, 1, False, x,
                                                                   grad_input=o)),
    # PyTorch has no sine kernel: sin(omega * x) is two passes, as a user writes it.
    "sine": ("x", lambda t, x, o: t.sin(t.mul(x, OMEGA, out=o), out=o),
             lambda t, g, x, o: t.cos(t.mul(x, OMEGA, out=o), out=o).mul_(g).mul_(OMEGA)),
}
_KWARGS = {"leaky_relu": {"negative_slope": SLOPE}, "sine": {"omega": OMEGA}}


def _unary_forward(name, size):
    shape = ELEMENTWISE[size]
    _, torch_fwd, _ = _UNARY[name]
    kwargs = _KWARGS.get(name, {})

    def build(rng):
        x = _normal(rng, shape)
        return {"x": x, "out": np.empty_like(x)}

    def run(be, a):
        op = getattr(be, name)
        return lambda: op(a["x"], out=a["out"], **kwargs)

    def run_torch(t, ts, a):
        return lambda: torch_fwd(t, ts["x"], ts["out"])

    n = int(np.prod(shape))
    return Case(name, size, _shape_str(shape), build, run, run_torch, nbytes=2 * 4 * n)


def _unary_backward(name, size):
    shape = ELEMENTWISE[size]
    saved, _, torch_bwd = _UNARY[name]
    kwargs = _KWARGS.get(name, {})

    def build(rng):
        x = _normal(rng, shape)
        if saved == "y":  # the forward output, computed by the reference
            from fastnn.kernels import reference
            x = getattr(reference, name)(x)
        return {"g": _normal(rng, shape), "s": x, "out": np.empty_like(x)}

    def run(be, a):
        op = getattr(be, name + "_backward")
        return lambda: op(a["g"], a["s"], out=a["out"], **kwargs)

    def run_torch(t, ts, a):
        return lambda: torch_bwd(t, ts["g"], ts["s"], ts["out"])

    n = int(np.prod(shape))
    return Case(name + "_backward", size, _shape_str(shape), build, run, run_torch,
                nbytes=3 * 4 * n)


def _softmax(size, log=False):
    """softmax, or log_softmax when log."""
    shape = ROWWISE[size]
    name = "log_softmax" if log else "softmax"

    def build(rng):
        x = _normal(rng, shape)
        return {"x": x, "out": np.empty_like(x)}

    def run(be, a):
        kernel = getattr(be, name)
        return lambda: kernel(a["x"], out=a["out"])

    def run_torch(t, ts, a):
        aten = getattr(t.ops.aten, "_" + name)
        return lambda: aten.out(ts["x"], 1, False, out=ts["out"])

    return Case(name, size, _shape_str(shape), build, run, run_torch,
                nbytes=2 * 4 * int(np.prod(shape)))


def _softmax_backward(size, log=False):
    """softmax_backward, or log_softmax_backward when log (y the forward's output)."""
    shape = ROWWISE[size]
    name = "log_softmax" if log else "softmax"

    def build(rng):
        from fastnn.kernels import reference
        y = getattr(reference, name)(_normal(rng, shape))
        return {"g": _normal(rng, shape), "y": y, "out": np.empty_like(y)}

    def run(be, a):
        kernel = getattr(be, name + "_backward")
        return lambda: kernel(a["g"], a["y"], out=a["out"])

    def run_torch(t, ts, a):
        aten = getattr(t.ops.aten, f"_{name}_backward_data")
        return lambda: aten.out(ts["g"], ts["y"], 1, t.float32, **{
            "grad_input" if name == "softmax" else "out": ts["out"]})

    return Case(name + "_backward", size, _shape_str(shape), build, run, run_torch,
                nbytes=3 * 4 * int(np.prod(shape)))


# ------------------------------------------------------------------------- dropout
P_DROP = 0.5


def _dropout_forward(size):
    shape = ELEMENTWISE[size]

    def build(rng):
        x = _normal(rng, shape)
        return {"x": x, "mask": np.empty_like(x), "out": np.empty_like(x)}

    def run(be, a):
        return lambda: be.dropout_forward(a["x"], P_DROP, 7, mask=a["mask"], out=a["out"])

    def run_torch(t, ts, a):
        return lambda: t.ops.aten.native_dropout(ts["x"], P_DROP, True)

    # x read, out and the mask written: a float32 mask here, PyTorch's a bool one
    values = int(np.prod(shape))
    return Case("dropout_forward", size, _shape_str(shape), build, run, run_torch,
                nbytes=3 * 4 * values, torch_bytes=(2 * 4 + 1) * values)


def _dropout_backward(size):
    shape = ELEMENTWISE[size]

    def build(rng):
        keep = rng.random(shape) >= P_DROP
        mask = (keep / (1 - P_DROP)).astype(F32)
        return {"g": _normal(rng, shape), "mask": mask, "keep": keep,
                "out": np.empty(shape, F32)}

    def run(be, a):
        return lambda: be.dropout_backward(a["g"], a["mask"], out=a["out"])

    def run_torch(t, ts, a):
        scale = 1.0 / (1 - P_DROP)
        return lambda: t.ops.aten.native_dropout_backward(ts["g"], ts["keep"], scale)

    # g and the mask read, out written (PyTorch's mask: bool)
    values = int(np.prod(shape))
    return Case("dropout_backward", size, _shape_str(shape), build, run, run_torch,
                nbytes=3 * 4 * values, torch_bytes=(2 * 4 + 1) * values)


# -------------------------------------------------------------------------- losses
def _softmax_cross_entropy(size):
    shape = ROWWISE[size]

    def build(rng):
        x = _normal(rng, shape) * F32(3)
        labels = rng.integers(0, shape[1], size=shape[0]).astype(np.int64)
        return {"x": x, "labels": labels, "grad": np.empty_like(x)}

    def run(be, a):
        return lambda: be.softmax_cross_entropy(a["x"], a["labels"], grad=a["grad"])

    def run_torch(t, ts, a):
        aten = t.ops.aten
        one = t.ones((), dtype=t.float32)

        def fn():  # what F.cross_entropy + backward runs, minus autograd bookkeeping
            logp = aten._log_softmax(ts["x"], 1, False)
            loss, total = aten.nll_loss_forward(logp, ts["labels"], None, 1, -100)
            g = aten.nll_loss_backward(one, logp, ts["labels"], None, 1, -100, total)
            return loss, aten._log_softmax_backward_data(g, logp, 1, t.float32)
        return fn

    # logits read, their gradient written, the int64 labels read (a tenth of the traffic
    # at the course size, 128x10)
    return Case("softmax_cross_entropy", size, _shape_str(shape), build, run, run_torch,
                nbytes=2 * 4 * int(np.prod(shape)) + 8 * shape[0])


def _pointwise_loss(name, size):
    shape = {"course": (128, 10), "large": ELEMENTWISE["large"]}[size]

    def build(rng):
        if name == "bce_loss":
            pred = (1 / (1 + np.exp(-_normal(rng, shape)))).astype(F32)
            target = (rng.random(shape) > 0.5).astype(F32)
        elif name == "bce_with_logits_loss":
            pred = _normal(rng, shape)
            target = (rng.random(shape) > 0.5).astype(F32)
        else:
            pred, target = _normal(rng, shape), _normal(rng, shape)
        return {"pred": pred, "target": target, "grad": np.empty_like(pred)}

    def run(be, a):
        op = getattr(be, name)
        return lambda: op(a["pred"], a["target"], grad=a["grad"])

    def run_torch(t, ts, a):
        aten = t.ops.aten
        one = t.ones((), dtype=t.float32)
        if name == "mse_loss":
            return lambda: (aten.mse_loss(ts["pred"], ts["target"], 1),
                            aten.mse_loss_backward(one, ts["pred"], ts["target"], 1))
        if name == "smooth_l1_loss":
            return lambda: (aten.smooth_l1_loss(ts["pred"], ts["target"], 1, 1.0),
                            aten.smooth_l1_loss_backward(one, ts["pred"], ts["target"], 1,
                                                         1.0))
        if name == "bce_with_logits_loss":
            # PyTorch has no fused backward op for it: its autograd formula, written out
            inv = 1.0 / ts["pred"].numel()
            return lambda: (aten.binary_cross_entropy_with_logits(ts["pred"], ts["target"],
                                                                  None, None, 1),
                            (t.sigmoid(ts["pred"]) - ts["target"]) * inv)
        return lambda: (aten.binary_cross_entropy(ts["pred"], ts["target"], None, 1),
                        aten.binary_cross_entropy_backward(one, ts["pred"], ts["target"],
                                                           None, 1))

    return Case(name, size, _shape_str(shape), build, run, run_torch,
                nbytes=3 * 4 * int(np.prod(shape)))


# ----------------------------------------------------------------------- layernorm
def _ln_arrays(rng, shape):
    n, d = shape
    x = _normal(rng, shape) * F32(2) + F32(0.5)
    a = {"x": x, "w": (1 + 0.1 * _normal(rng, (d,))).astype(F32),
         "b": _normal(rng, (d,)) * F32(0.1),
         "out": np.empty_like(x), "sm": np.empty(n, F32), "si": np.empty(n, F32),
         "g": _normal(rng, shape), "gw": np.zeros(d, F32), "gb": np.zeros(d, F32),
         "gi": np.empty_like(x)}
    from fastnn.kernels import reference
    _, a["sm"][...], a["si"][...] = reference.layer_norm_forward(x, a["w"], a["b"])
    return a


def _layer_norm(op, size):
    shape = LAYERNORM[size]
    n = int(np.prod(shape))
    rows, d_feat = shape
    # forward: x read, y written, weight and bias read, each row's mean and invstd
    # written; backward: grad_out and x read, grad_in written, weight, mean and invstd
    # read, grad_weight and grad_bias accumulated (read and written)
    fwd_bytes = 4 * (2 * n + 2 * d_feat + 2 * rows)
    bwd_bytes = 4 * (3 * n + 5 * d_feat + 2 * rows)
    build = lambda rng: _ln_arrays(rng, shape)  # noqa: E731
    d = [shape[1]]
    if op == "layer_norm_forward":
        return Case(op, size, _shape_str(shape), build,
                    lambda be, a: lambda: be.layer_norm_forward(
                        a["x"], a["w"], a["b"], 1e-5, out=a["out"], save_mean=a["sm"],
                        save_invstd=a["si"]),
                    lambda t, ts, a: lambda: t.ops.aten.native_layer_norm(
                        ts["x"], d, ts["w"], ts["b"], 1e-5), nbytes=fwd_bytes)

    def run(be, a):
        return lambda: be.layer_norm_backward(a["g"], a["x"], a["w"], a["sm"], a["si"],
                                              grad_weight=a["gw"], grad_bias=a["gb"],
                                              grad_in=a["gi"])

    def run_torch(t, ts, a):
        # PyTorch's rstd is (N, 1)
        mean, rstd = ts["sm"].reshape(-1, 1), ts["si"].reshape(-1, 1)
        return lambda: t.ops.aten.native_layer_norm_backward(
            ts["g"], ts["x"], d, mean, rstd, ts["w"], ts["b"], [True, True, True])
    return Case(op, size, _shape_str(shape), build, run, run_torch, nbytes=bwd_bytes)


# ----------------------------------------------------------------------- batchnorm
def _bn_arrays(rng, shape):
    c = shape[1]
    x = _normal(rng, shape) * F32(2) + F32(0.5)
    a = {"x": x, "w": (1 + 0.1 * _normal(rng, (c,))).astype(F32),
         "b": _normal(rng, (c,)) * F32(0.1),
         "rm": np.zeros(c, F32), "rv": np.ones(c, F32), "out": np.empty_like(x),
         "sm": np.empty(c, F32), "si": np.empty(c, F32), "g": _normal(rng, shape),
         "gw": np.zeros(c, F32), "gb": np.zeros(c, F32), "gi": np.empty_like(x)}
    from fastnn.kernels import reference
    _, a["sm"][...], a["si"][...] = reference.batchnorm_forward(
        x, a["w"], a["b"], a["rm"].copy(), a["rv"].copy())
    return a


def _bn_forward(be, a):
    return be.batchnorm_forward(a["x"], a["w"], a["b"], a["rm"], a["rv"], True, 0.1, 1e-5,
                                False, out=a["out"], save_mean=a["sm"], save_invstd=a["si"])


def _bn_backward(be, a):
    return be.batchnorm_backward(a["g"], a["x"], a["w"], a["sm"], a["si"], True, False,
                                 grad_weight=a["gw"], grad_bias=a["gb"], grad_in=a["gi"])


def _torch_bn_forward(t, ts):
    return t.ops.aten.native_batch_norm(ts["x"], ts["w"], ts["b"], ts["rm"], ts["rv"],
                                        True, 0.1, 1e-5)


def _torch_bn_backward(t, ts, sm, si):
    return t.ops.aten.native_batch_norm_backward(ts["g"], ts["x"], ts["w"], ts["rm"], ts["rv"],
                                                 sm, si, True, 1e-5, [True, True, True])


def _batchnorm(op, size):
    shape = BATCHNORM[size]
    n = int(np.prod(shape))
    c = shape[1]
    # forward (training): x read, y written, weight and bias read, the running mean and
    # variance read and written, the saved mean and invstd written; backward: grad_out
    # and x read, grad_in written, weight and the saved statistics read, grad_weight and
    # grad_bias accumulated (read and written)
    fwd_bytes = 4 * (2 * n + 8 * c)
    bwd_bytes = 4 * (3 * n + 7 * c)
    build = lambda rng: _bn_arrays(rng, shape)  # noqa: E731
    if op == "batchnorm_forward":
        return Case(op, size, _shape_str(shape), build,
                    lambda be, a: lambda: _bn_forward(be, a),
                    lambda t, ts, a: lambda: _torch_bn_forward(t, ts), nbytes=fwd_bytes)
    if op == "batchnorm_backward":
        return Case(op, size, _shape_str(shape), build,
                    lambda be, a: lambda: _bn_backward(be, a),
                    lambda t, ts, a: lambda: _torch_bn_backward(t, ts, ts["sm"], ts["si"]),
                    nbytes=bwd_bytes)

    def run(be, a):
        def fn():
            _bn_forward(be, a)
            return _bn_backward(be, a)
        return fn

    def run_torch(t, ts, a):
        def fn():
            _, sm, si = _torch_bn_forward(t, ts)
            return _torch_bn_backward(t, ts, sm, si)
        return fn

    return Case("batchnorm_forward+batchnorm_backward", size, _shape_str(shape), build, run,
                run_torch, nbytes=fwd_bytes + bwd_bytes, torch_internal=("out", "sm", "si"))


# --------------------------------------------------------------------------- dense
_TORCH_ACT = {"relu": lambda t, z: z.clamp_min_(0),
              "leaky_relu": lambda t, z: t.ops.aten.leaky_relu_(z, SLOPE)}
_TORCH_ACT_BWD = {"relu": lambda t, g, y: t.ops.aten.threshold_backward(g, y, 0),
                  "leaky_relu": lambda t, g, y: t.ops.aten.leaky_relu_backward(g, y, SLOPE, True)}


def _linear_arrays(rng, n, fin, fout, act):
    from fastnn.kernels import reference
    x = _normal(rng, (n, fin))
    w = (_normal(rng, (fout, fin)) / F32(np.sqrt(fin))).astype(F32)
    b = _normal(rng, (fout,)) * F32(0.1)
    y = reference.linear_forward(x, w, b, act, SLOPE)
    return {"x": x, "w": w, "b": b, "y": y, "out": np.empty_like(y), "g": _normal(rng, y.shape),
            "gw": np.zeros_like(w), "gb": np.zeros_like(b), "gi": np.empty_like(x),
            "scratch": np.empty_like(y)}


def _linear(op, size):
    n, fin, fout, act = LINEAR[size]
    shape = f"{n}x{fin}->{fout} {act}"
    build = lambda rng: _linear_arrays(rng, n, fin, fout, act)  # noqa: E731
    flops = 2.0 * n * fin * fout
    if op == "linear_forward":
        def run(be, a):
            return lambda: be.linear_forward(a["x"], a["w"], a["b"], act, SLOPE, out=a["out"])

        def run_torch(t, ts, a):
            def fn():
                z = t.addmm(ts["b"], ts["x"], ts["w"].t(), out=ts["out"])
                return _TORCH_ACT[act](t, z)
            return fn
        return Case(op, size, shape, build, run, run_torch, flops=flops)

    def run(be, a):
        return lambda: be.linear_backward(a["g"], a["x"], a["w"], a["y"], act, SLOPE,
                                          grad_weight=a["gw"], grad_bias=a["gb"],
                                          grad_in=a["gi"], scratch=a["scratch"])

    def run_torch(t, ts, a):
        def fn():
            gz = _TORCH_ACT_BWD[act](t, ts["g"], ts["y"])
            ts["gw"].addmm_(gz.t(), ts["x"])
            ts["gb"].add_(gz.sum(0))
            return t.mm(gz, ts["w"], out=ts["gi"])
        return fn
    return Case(op, size, shape, build, run, run_torch, flops=2 * flops,
                torch_internal=("scratch",))


# ---------------------------------------------------------------------------- conv
def _conv_arrays(rng, xshape, cout, k, stride, pad):
    from fastnn.kernels import reference
    cin = xshape[1]
    x = _normal(rng, xshape)
    w = (_normal(rng, (cout, cin, k, k)) / F32(np.sqrt(cin * k * k))).astype(F32)
    b = _normal(rng, (cout,)) * F32(0.1)
    y = reference.conv2d_forward(x, w, b, (stride, stride), (pad, pad))
    return {"x": x, "w": w, "b": b, "out": np.empty_like(y), "g": _normal(rng, y.shape),
            "gw": np.zeros_like(w), "gb": np.zeros_like(b), "gi": np.empty_like(x)}


def _conv(op, size):
    xshape, cout, k, stride, pad = CONV[size]
    n, cin, h, w_ = xshape
    ho = (h + 2 * pad - k) // stride + 1
    wo = (w_ + 2 * pad - k) // stride + 1
    shape = f"{_shape_str(xshape)}->{cout} {k}x{k}/{stride} pad {pad}"
    fwd_flops = 2.0 * n * cout * ho * wo * cin * k * k
    build = lambda rng: _conv_arrays(rng, xshape, cout, k, stride, pad)  # noqa: E731
    st, pd = (stride, stride), (pad, pad)

    def fwd(be, a):
        return be.conv2d_forward(a["x"], a["w"], a["b"], st, pd, out=a["out"])

    def bwd(be, a):
        return be.conv2d_backward(a["g"], a["x"], a["w"], st, pd, grad_weight=a["gw"],
                                  grad_bias=a["gb"], grad_in=a["gi"])

    def tfwd(t, ts):
        return t.ops.aten.convolution(ts["x"], ts["w"], ts["b"], list(st), list(pd), [1, 1],
                                      False, [0, 0], 1)

    def tbwd(t, ts):
        return t.ops.aten.convolution_backward(ts["g"], ts["x"], ts["w"], [cout], list(st),
                                               list(pd), [1, 1], False, [0, 0], 1,
                                               [True, True, True])

    if op == "conv2d_forward":
        return Case(op, size, shape, build, lambda be, a: lambda: fwd(be, a),
                    lambda t, ts, a: lambda: tfwd(t, ts), flops=fwd_flops)
    if op == "conv2d_backward":
        return Case(op, size, shape, build, lambda be, a: lambda: bwd(be, a),
                    lambda t, ts, a: lambda: tbwd(t, ts), flops=2 * fwd_flops)
    return Case("conv2d_forward+conv2d_backward", size, shape, build,
                lambda be, a: lambda: (fwd(be, a), bwd(be, a)),
                lambda t, ts, a: lambda: (tfwd(t, ts), tbwd(t, ts)), flops=3 * fwd_flops)


def _depthwise(op, size):
    """Depthwise conv (Conv2d with groups = C_in): its cost counted in bytes, the
    layer's kH * kW multiply-adds per value being too few for a GEMM's ceiling."""
    from fastnn.kernels import reference
    xshape, mult, k, stride, pad = DEPTHWISE[size]
    n, cin, h, w_ = xshape
    cout = cin * mult
    ho = (h + 2 * pad - k) // stride + 1
    wo = (w_ + 2 * pad - k) // stride + 1
    n_in, n_out = n * cin * h * w_, n * cout * ho * wo
    shape = f"{_shape_str(xshape)} x{mult} {k}x{k}/{stride} pad {pad}"
    st, pd = (stride, stride), (pad, pad)

    def build(rng):
        x = _normal(rng, xshape)
        w = (_normal(rng, (cout, 1, k, k)) / F32(k)).astype(F32)
        b = _normal(rng, (cout,)) * F32(0.1)
        y = reference.depthwise_conv2d_forward(x, w, b, st, pd)
        return {"x": x, "w": w, "b": b, "out": np.empty_like(y),
                "g": _normal(rng, y.shape), "gw": np.zeros_like(w), "gb": np.zeros_like(b),
                "gi": np.empty_like(x)}

    def fwd(be, a):
        return be.depthwise_conv2d_forward(a["x"], a["w"], a["b"], st, pd, out=a["out"])

    def bwd(be, a):
        return be.depthwise_conv2d_backward(a["g"], a["x"], a["w"], st, pd,
                                            grad_weight=a["gw"], grad_bias=a["gb"],
                                            grad_in=a["gi"])

    def tfwd(t, ts):
        return t.ops.aten.convolution(ts["x"], ts["w"], ts["b"], list(st), list(pd), [1, 1],
                                      False, [0, 0], cin)

    def tbwd(t, ts):
        return t.ops.aten.convolution_backward(ts["g"], ts["x"], ts["w"], [cout], list(st),
                                               list(pd), [1, 1], False, [0, 0], cin,
                                               [True, True, True])

    n_w = cout * k * k
    if op == "depthwise_conv2d_forward":   # x, weight, bias read; y written
        return Case(op, size, shape, build, lambda be, a: lambda: fwd(be, a),
                    lambda t, ts, a: lambda: tfwd(t, ts),
                    nbytes=4 * (n_in + n_out + n_w + cout))
    # grad_out, x, weight read; grad_in written; grad_weight, grad_bias accumulated
    return Case(op, size, shape, build, lambda be, a: lambda: bwd(be, a),
                lambda t, ts, a: lambda: tbwd(t, ts),
                nbytes=4 * (2 * n_in + n_out + 3 * n_w + 2 * cout))


def _pool_arrays(rng, xshape, k, stride, pad):
    from fastnn.kernels import reference
    x = _normal(rng, xshape)
    kk, ss, pp = (k, k), (stride, stride), (pad, pad)
    y, idx = reference.max_pool2d_forward(x, kk, ss, pp)
    return {"x": x, "out": np.empty_like(y), "idx": np.empty_like(idx), "saved_idx": idx,
            "g": _normal(rng, y.shape), "gi": np.empty_like(x)}


def _pool(op, size):
    xshape, k, stride, pad = POOL[size]
    kk, ss, pp = (k, k), (stride, stride), (pad, pad)
    n_in = int(np.prod(xshape))
    ho = (xshape[2] + 2 * pad - k) // stride + 1
    wo = (xshape[3] + 2 * pad - k) // stride + 1
    n_out = xshape[0] * xshape[1] * ho * wo
    shape = f"{_shape_str(xshape)} {k}x{k}/{stride} pad {pad}"
    build = lambda rng: _pool_arrays(rng, xshape, k, stride, pad)  # noqa: E731
    L = list

    def mfwd(be, a):
        return be.max_pool2d_forward(a["x"], kk, ss, pp, out=a["out"], indices=a["idx"])

    def mbwd(be, a, idx):
        return be.max_pool2d_backward(a["g"], idx, xshape, grad_in=a["gi"])

    def tmfwd(t, ts):
        return t.ops.aten.max_pool2d_with_indices(ts["x"], L(kk), L(ss), L(pp), [1, 1], False)

    def tmbwd(t, ts, idx):
        return t.ops.aten.max_pool2d_with_indices_backward(ts["g"], ts["x"], L(kk), L(ss),
                                                           L(pp), [1, 1], False, idx)

    if op == "max_pool2d_forward":
        return Case(op, size, shape, build, lambda be, a: lambda: mfwd(be, a),
                    lambda t, ts, a: lambda: tmfwd(t, ts), nbytes=4 * n_in + 12 * n_out)
    if op == "max_pool2d_backward":
        return Case(op, size, shape, build, lambda be, a: lambda: mbwd(be, a, a["saved_idx"]),
                    lambda t, ts, a: lambda: tmbwd(t, ts, ts["saved_idx"]),
                    nbytes=12 * n_out + 4 * n_in)
    if op == "max_pool2d_forward+max_pool2d_backward":
        def run(be, a):
            def fn():
                _, idx = mfwd(be, a)
                return mbwd(be, a, idx)
            return fn

        def run_torch(t, ts, a):
            def fn():
                _, idx = tmfwd(t, ts)
                return tmbwd(t, ts, idx)
            return fn
        return Case(op, size, shape, build, run, run_torch, nbytes=2 * (4 * n_in + 12 * n_out),
                    torch_internal=("out", "idx"))
    if op == "avg_pool2d_forward":
        return Case(op, size, shape, build,
                    lambda be, a: lambda: be.avg_pool2d_forward(a["x"], kk, ss, pp, True,
                                                                out=a["out"]),
                    lambda t, ts, a: lambda: t.ops.aten.avg_pool2d(ts["x"], L(kk), L(ss), L(pp),
                                                                   False, True, None),
                    nbytes=4 * (n_in + n_out))
    return Case(op, size, shape, build,
                lambda be, a: lambda: be.avg_pool2d_backward(a["g"], xshape, kk, ss, pp, True,
                                                             grad_in=a["gi"]),
                lambda t, ts, a: lambda: t.ops.aten.avg_pool2d_backward(
                    ts["g"], ts["x"], L(kk), L(ss), L(pp), False, True, None),
                nbytes=4 * (n_in + n_out))


# ---------------------------------------------------------------------- optimizers
# NAdam's defaults (lr as the case's, momentum_decay 4e-3) and the step the cases run
NADAM_LR, NADAM_STEP, NADAM_MOMENTUM_DECAY = 2e-3, 10, 4e-3


def _nadam_mu(step, beta1=0.9):
    return beta1 * (1.0 - 0.5 * 0.96 ** (step * NADAM_MOMENTUM_DECAY))


def nadam_rates(step=NADAM_STEP, lr=NADAM_LR, beta1=0.9, beta2=0.999):
    """(avg_rate, grad_rate, sq_scale, mu_product before the step): PyTorch's NAdam at
    ``step`` as fastnn's adaptive_moments_update takes it (param -= (avg_rate * m +
    grad_rate * g) / (sq_scale * sqrt(v) + eps))."""
    before = float(np.prod([_nadam_mu(s, beta1) for s in range(1, step)]))
    mu, mu_next = _nadam_mu(step, beta1), _nadam_mu(step + 1, beta1)
    product = before * mu
    return (lr * mu_next / (1.0 - product * mu_next), lr * (1.0 - mu) / (1.0 - product),
            float(1.0 / np.sqrt(1.0 - beta2 ** step)), before)


def _torch_optim(op, t, ts):
    """PyTorch's update of ``op`` on the case's tensors (p, g and the state m, v shared
    with the arrays, as fastnn's call updates them): what ``torch.optim``'s step runs
    inside, without that step's Python wrapper (hooks, parameter groups, state lookups),
    as fastnn's rows time its kernels without ``fastnn.optim``'s step. SGD, Adagrad and
    Adam: their fused one-pass CPU kernels (what ``fused=True`` calls), the fastest
    PyTorch update; the others: their single-tensor functional forms (what the step runs
    on the CPU). Step counters at the step fastnn's call is given."""
    import importlib
    p, g, m, v = ts["p"], ts["g"], ts["m"], ts["v"]

    def step(value):
        return [t.tensor(float(value))]

    if op == "sgd_update":
        return lambda: t._fused_sgd_([p], [g], [m], weight_decay=0.0, momentum=0.9, lr=0.01,
                                     dampening=0.0, nesterov=False, maximize=False,
                                     is_first_step=False)
    if op == "adagrad_update":
        steps = step(10)
        return lambda: t._fused_adagrad_([p], [g], [v], steps, lr=1e-2, lr_decay=0.0,
                                         weight_decay=0.0, eps=1e-10, maximize=False)
    if op == "adam_update":
        steps = step(10)
        return lambda: t._fused_adam_([p], [g], [m], [v], [], steps, lr=1e-3, beta1=0.9,
                                      beta2=0.999, weight_decay=0.0, eps=1e-8, amsgrad=False,
                                      maximize=False)
    name = op[:-len("_update")]
    module = importlib.import_module("torch.optim." + {"adaptive_moments": "nadam"}.get(
        name, name))
    if op == "rmsprop_update":
        steps = step(0)
        return lambda: module.rmsprop([p], [g], [v], [], [], steps, foreach=False, lr=1e-2,
                                      alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0,
                                      centered=False)
    if op == "adamax_update":   # (the step counter is raised before it is used: 9 -> 10)
        steps = step(9)
        return lambda: module.adamax([p], [g], [m], [v], steps, foreach=False, eps=1e-8,
                                     beta1=0.9, beta2=0.999, lr=2e-3, weight_decay=0.0)
    if op == "adaptive_moments_update":
        steps, products = step(NADAM_STEP - 1), step(nadam_rates()[3])
        return lambda: module.nadam([p], [g], [m], [v], products, steps, foreach=False,
                                    beta1=0.9, beta2=0.999, lr=NADAM_LR, weight_decay=0.0,
                                    momentum_decay=NADAM_MOMENTUM_DECAY, eps=1e-8)
    if op == "adadelta_update":
        steps = step(0)
        return lambda: module.adadelta([p], [g], [m], [v], steps, foreach=False, lr=1.0,
                                       rho=0.9, eps=1e-6, weight_decay=0.0, maximize=False)
    if op == "rprop_update":
        steps = step(0)
        return lambda: module.rprop([p], [g], [m], [v], steps, foreach=False,
                                    step_size_min=1e-6, step_size_max=50.0, etaminus=0.5,
                                    etaplus=1.2)
    if op == "asgd_update":     # eta 1e-2 and mu 1 at the first call, as fastnn's
        steps, mus, etas = step(0), step(1.0), step(1e-2)
        return lambda: module.asgd([p], [g], [m], mus, etas, steps, foreach=False,
                                   lambd=1e-4, lr=1e-2, t0=1e6, alpha=0.75, weight_decay=0.0)
    raise KeyError(f"bench.cases: no PyTorch twin for optimizer op {op!r}")


def _optim(op, size):
    shape = PARAMS[size]
    n = int(np.prod(shape))

    def build(rng):
        return {"p": _normal(rng, shape), "g": _normal(rng, shape) * F32(0.01),
                "m": np.zeros(shape, F32), "v": np.zeros(shape, F32)}

    avg_rate, grad_rate, sq_scale, _ = nadam_rates()
    # op -> (fastnn call on the arrays, label suffix, arrays read or written per value);
    # the PyTorch twin: _torch_optim
    calls = {
        "sgd_update": (lambda be, a: be.sgd_update(a["p"], a["g"], a["m"], 0.01, 0.9, 0.0,
                                                   False), " momentum", 5),
        "adagrad_update": (lambda be, a: be.adagrad_update(a["p"], a["g"], a["v"], 1e-2),
                           "", 5),
        "rmsprop_update": (lambda be, a: be.rmsprop_update(a["p"], a["g"], a["v"], 1e-2),
                           "", 5),
        "adam_update": (lambda be, a: be.adam_update(a["p"], a["g"], a["m"], a["v"], 10, 1e-3),
                        "", 7),
        "adamax_update": (lambda be, a: be.adamax_update(a["p"], a["g"], a["m"], a["v"], 10,
                                                         2e-3), "", 7),
        # NAdam's step-10 rates (the op also runs RAdam's); PyTorch's NAdam the twin
        "adaptive_moments_update": (lambda be, a: be.adaptive_moments_update(
            a["p"], a["g"], a["m"], a["v"], avg_rate, grad_rate, 0.9, 0.999, sq_scale, 1e-8),
            "", 7),
        "adadelta_update": (lambda be, a: be.adadelta_update(a["p"], a["g"], a["m"], a["v"]),
                            "", 7),
        # m as prev, v as step_size (zeros at first: clamped up to step_size_min)
        "rprop_update": (lambda be, a: be.rprop_update(a["p"], a["g"], a["m"], a["v"]),
                         "", 7),
        # eta at PyTorch's default lr, mu 1 (ax a copy of p: t0 1e6 steps away)
        "asgd_update": (lambda be, a: be.asgd_update(a["p"], a["g"], a["m"], 1e-2, 1.0),
                        "", 4),
    }
    call, label, arrays = calls[op]

    def run(be, a):
        return lambda: call(be, a)

    def run_torch(t, ts, a):
        return _torch_optim(op, t, ts)
    return Case(op, size, _shape_str(shape) + label, build, run, run_torch,
                nbytes=arrays * 4 * n)


# ----------------------------------------------------------------------- the table
_UNARY_NAMES = tuple(_UNARY)


def _case_for(op, size):
    """The Case of a table op (or '+' pair) at a size label, or None if that size is n/a."""
    base = op[:-len("_backward")] if op.endswith("_backward") else op
    if base in _UNARY_NAMES:
        if size not in ELEMENTWISE:
            return None
        return _unary_forward(op, size) if op == base else _unary_backward(base, size)
    if op in ("softmax", "log_softmax"):
        return _softmax(size, log=op == "log_softmax")
    if op in ("softmax_backward", "log_softmax_backward"):
        return _softmax_backward(size, log=op == "log_softmax_backward")
    if op == "dropout_forward":
        return _dropout_forward(size)
    if op == "dropout_backward":
        return _dropout_backward(size)
    if op == "softmax_cross_entropy":
        return _softmax_cross_entropy(size)
    if op in ("mse_loss", "bce_loss", "bce_with_logits_loss", "smooth_l1_loss"):
        return _pointwise_loss(op, size)
    if op.startswith("batchnorm"):
        return _batchnorm(op, size) if size in BATCHNORM else None
    if op.startswith("layer_norm"):
        return _layer_norm(op, size)
    if op.startswith("linear"):
        return _linear(op, size)
    if op.startswith("conv2d"):
        return _conv(op, size)
    if op.startswith("depthwise_conv2d"):
        return _depthwise(op, size)
    if "pool2d" in op:
        return _pool(op, size)
    if op.endswith("_update"):
        return _optim(op, size)
    raise KeyError(f"bench.cases: no benchmark case for op {op!r}; add one")


# Forward+backward pairs the issues set targets for.
PAIRS = ("batchnorm_forward+batchnorm_backward", "conv2d_forward+conv2d_backward",
         "max_pool2d_forward+max_pool2d_backward")


def sizes_for(op):
    if op.startswith("batchnorm"):
        return tuple(BATCHNORM)
    return ("course", "large")


def all_cases(ops=None):
    """Every (op, size) Case: the table's ops in table order, then the pairs."""
    names = list(ops) if ops is not None else optable.op_names() + list(PAIRS)
    cases = []
    for op in names:
        for size in sizes_for(op):
            case = _case_for(op, size)
            if case is not None:
                cases.append(case)
    return cases


def get_case(op, size):
    case = _case_for(op, size)
    if case is None:
        raise KeyError(f"bench.cases: op {op!r} has no size {size!r}")
    return case
