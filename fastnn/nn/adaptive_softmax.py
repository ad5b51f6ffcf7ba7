"""AdaptiveLogSoftmaxWithLoss: PyTorch's adaptive softmax (Grave et al., 2016), its
linear layers and row-wise log-softmax on the current backend's kernels."""
import collections
import numbers

import numpy as np

from .. import device as _device
from ..errors import DtypeError, RuntimeValueError, TypeValueError
from ..validation import FLOAT_DTYPES, check_bool, check_float_array, check_positive_int
from .container import ModuleList, Sequential
from .linear import Linear
from .module import Module, Parameter, check_kept, kept_for_backward

#: what ``forward`` returns, PyTorch's ``_ASMoutput``: output (the target
#: log-probability of each sample) and loss (-mean(output))
_ASMoutput = collections.namedtuple("_ASMoutput", ["output", "loss"])


class AdaptiveLogSoftmaxWithLoss(Module):
    """PyTorch's AdaptiveLogSoftmaxWithLoss: a head softmax over the ``cutoffs[0]`` most
    frequent classes plus one entry per cluster, and per cluster a two-layer projection
    (in_features -> in_features // div_value**(i+1) -> cluster size, no bias) whose softmax
    splits that entry's probability among the cluster's classes.

    ``asm(input, target)`` -> ``_ASMoutput(output, loss)``: input (N, in_features) or one
    sample (in_features,); target integer labels (N,) or () in [0, n_classes); output the
    target's log-probability per sample ((N,) or (), input's dtype), loss = -mean(output)
    (a NumPy float64, as fastnn's losses return; NaN for an empty batch). Only the
    clusters some target falls in are computed.

    ``backward(grad=None, grad_output=None)`` -> the gradient w.r.t. input (its shape and
    dtype), accumulating head.weight (head.bias) and every tail weight's gradient (zero
    for a cluster no target fell in; PyTorch leaves those None). grad: the gradient w.r.t.
    loss, a number; grad_output: the gradient w.r.t. output (output's shape, or a number).
    With neither, grad is 1 (``out = asm(x, y); grad_x = asm.backward()``, PyTorch's
    ``out.loss.backward()``); with grad_output alone only the output's gradient counts
    (PyTorch's ``out.output.backward(g)``); with both, their sum.

    ``log_prob(input)`` (N, n_classes) log-probabilities of every class and
    ``predict(input)`` (N,) int64 most likely class (PyTorch's algorithm: the full
    distribution only for rows whose head argmax is a cluster) take (N, in_features) and
    touch no gradient state.

    Weights are PyTorch's (state dict keys head.weight, head.bias, tail.i.0.weight,
    tail.i.1.weight; PyTorch's Linear initialisation from fastnn's generator). A cluster
    whose hidden size in_features // div_value**(i+1) is 0 has zero-width projections (as
    PyTorch's): its classes are uniform within the cluster. A model moved to 'cuda' keeps
    its weights there and computes on the host (copied over and back each call, as
    EmbeddingBag); arrays follow the caller.
    """

    def __init__(self, in_features, n_classes, cutoffs, div_value=4.0, head_bias=False,
                 dtype=np.float32):
        super().__init__()
        name = "AdaptiveLogSoftmaxWithLoss"
        in_features = check_positive_int(name, "in_features", in_features)
        n_classes = check_positive_int(name, "n_classes", n_classes)
        try:
            cutoffs = list(cutoffs)
        except TypeError:
            raise TypeError(f"{name}: expected cutoffs to be a sequence of ints, got "
                            f"{cutoffs!r}") from None
        if len(cutoffs) == 0:
            raise ValueError("cutoffs should be a sequence of length larger than 0")
        if any(not isinstance(c, numbers.Real) for c in cutoffs):
            raise TypeValueError(f"{name}: expected cutoffs to be a sequence of ints, got "
                                 f"{cutoffs!r}")
        if (any(isinstance(c, bool) for c in cutoffs)
                or cutoffs != sorted(cutoffs) or min(cutoffs) <= 0
                or max(cutoffs) > n_classes - 1 or len(set(cutoffs)) != len(cutoffs)
                or any(int(c) != c for c in cutoffs)):
            raise ValueError("cutoffs should be a sequence of unique, positive integers "
                             "sorted in an increasing order, where each value is between 1 "
                             "and n_classes-1")
        if any(not isinstance(c, numbers.Integral) for c in cutoffs):
            # (a whole float: PyTorch's Linear refuses the float size it makes)
            raise TypeValueError(f"{name}: expected cutoffs to be a sequence of ints, got "
                                 f"{cutoffs!r}")
        if (isinstance(div_value, bool) or not isinstance(div_value, numbers.Real)
                or not div_value > 0 or not np.isfinite(div_value)):
            raise ValueError(f"{name}: expected div_value to be a number > 0, got "
                             f"{div_value!r}")
        head_bias = check_bool(name, "head_bias", head_bias)
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        if dtype not in FLOAT_DTYPES:
            raise DtypeError(f"{name}: expected dtype float32 or float64, got {dtype}")
        self.in_features = in_features
        self.n_classes = n_classes
        self.cutoffs = [int(c) for c in cutoffs] + [n_classes]
        self.div_value = div_value
        self.head_bias = head_bias
        self.shortlist_size = self.cutoffs[0]
        self.n_clusters = len(self.cutoffs) - 1
        self.head_size = self.shortlist_size + self.n_clusters
        self.head = Linear(in_features, self.head_size, bias=head_bias, dtype=dtype)
        self.tail = ModuleList()
        for i in range(self.n_clusters):
            hsz = int(in_features // (div_value ** (i + 1)))
            osz = self.cutoffs[i + 1] - self.cutoffs[i]
            self.tail.append(Sequential(_linear(in_features, hsz, dtype),
                                        _linear(hsz, osz, dtype)))
        self._ctx = None

    def reset_parameters(self):
        """PyTorch's: the head's, then each cluster's two projections' weights drawn
        again, in place."""
        self.head.reset_parameters()
        for projections in self.tail:
            for linear in projections:
                linear.reset_parameters()

    # --------------------------------------------------------------- forward
    def forward(self, input, target):
        """_ASMoutput(output, loss) for input (N, in_features) and labels (N,), or one
        sample (in_features,) and a label () (see the class docstring)."""
        where = self._where()
        x, caller = self._host_input(input)
        if not _device.is_array(target):
            target = np.asarray(target)   # a Python int as the label of one sample
        if target.dtype.kind not in "iu":
            raise DtypeError(f"{where}: expected target to be integer class labels, got "
                             f"{target.dtype}")
        t = _device.to_host(target)
        if t.ndim == 1:
            if x.ndim == 0 or x.shape[0] != t.shape[0]:
                raise RuntimeValueError(
                    "Input and target should have the same size in the batch "
                    "dimension.")
            if x.ndim != 2:
                raise RuntimeValueError(
                    f"1D target tensor expects 2D input tensors, but found "
                    f"inputs with size {tuple(x.shape)}")
        elif t.ndim == 0:
            if x.ndim != 1:
                raise RuntimeValueError(
                    f"0D target tensor expects 1D input tensors, but found "
                    f"inputs with size {tuple(x.shape)}")
        else:
            raise RuntimeValueError(
                "0D or 1D target tensor expected, multi-target not supported")
        batched = t.ndim == 1
        x2 = x if batched else x.reshape(1, -1)
        t = t.reshape(-1).astype(np.int64)
        if x2.shape[1] != self.in_features:
            raise RuntimeValueError(
                f"{where}: expected input with {self.in_features} features "
                f"(in_features), got shape {tuple(x.shape)}")
        if t.size and (t.min() < 0 or t.max() >= self.n_classes):
            raise RuntimeValueError(
                f"Target values should be in [0, {self.n_classes - 1}], but "
                f"values in range [{t.min()}, {t.max()}] were found. ")
        k = _device.kernels("cpu")
        n = t.shape[0]
        head_w, head_b, tails = self._weights()
        head_lp = k.log_softmax(k.linear_forward(x2, head_w, head_b, "identity", 0.01))
        # the head entry of each row: its class in the shortlist, else its cluster's entry
        cluster = np.searchsorted(np.asarray(self.cutoffs), t, side="right")
        in_head = np.where(cluster == 0, t, self.shortlist_size + cluster - 1)
        rows = np.arange(n)
        output = head_lp[rows, in_head]
        clusters = []   # (cluster index, its rows, their targets in it, x, hidden, log-probs)
        for i in range(1, self.n_clusters + 1):
            picked = np.flatnonzero(cluster == i)
            if picked.size == 0:
                continue
            xs = np.ascontiguousarray(x2[picked])
            w1, w2 = tails[i - 1]
            hidden = k.linear_forward(xs, w1, None, "identity", 0.01)
            lp = k.log_softmax(k.linear_forward(hidden, w2, None, "identity", 0.01))
            relative = t[picked] - self.cutoffs[i - 1]
            output[picked] = lp[np.arange(picked.size), relative] + output[picked]
            clusters.append((i, picked, relative, xs, hidden, lp))
        loss = np.float64(-output.mean(dtype=np.float64)) if n else np.float64(np.nan)
        self._ctx = kept_for_backward((x2, head_lp, in_head, clusters, tuple(x.shape), caller))
        return _ASMoutput(caller.put(output if batched else output.reshape(())), loss)

    # -------------------------------------------------------------- backward
    def _hook_grad_outputs(self, args, kwargs):
        """The backward hooks see PyTorch's (grad_output, grad_loss), in forward's order
        (output, loss), None where none is given; neither given: (None, 1), the loss's
        default gradient. A hook leaving both None: no gradient flows (zeros)."""
        grad = args[0] if args else kwargs.pop("grad", None)
        grad_output = args[1] if len(args) > 1 else kwargs.pop("grad_output", None)
        if grad is None and grad_output is None:
            grad = np.ones((), self.head.weight.data.dtype)
        return (grad_output, grad), self._from_hook_grads

    @staticmethod
    def _from_hook_grads(grads):
        grad_output, grad = grads
        return (0.0 if grad is None and grad_output is None else grad, grad_output)

    def backward(self, grad=None, grad_output=None):
        """The gradient w.r.t. the last forward's input; accumulates every parameter's
        gradient. grad: w.r.t. loss (a number); grad_output: w.r.t. output (output's shape
        or a number); neither: grad = 1 (see the class docstring)."""
        where = f"{self._where()}.backward"
        check_kept(self, self._ctx)
        x2, head_lp, in_head, clusters, shape, caller = self._ctx
        dtype = x2.dtype.type
        n = x2.shape[0]
        per_row = np.zeros(n, np.float64)   # d(objective)/d(output) of each row
        if grad_output is not None:
            out_shape = shape[:-1]
            if _device.is_array(grad_output):
                grad_output = _device.to_host(grad_output)
            if np.ndim(grad_output) == 0:
                per_row += float(grad_output)
            elif np.shape(grad_output) != out_shape:
                raise RuntimeValueError(f"{where}: expected grad_output of shape {out_shape} "
                                        f"(the output's) or a number, got "
                                        f"{np.shape(grad_output)}")
            else:
                per_row += np.asarray(grad_output, np.float64).reshape(n)
        if grad is not None or grad_output is None:
            g = 1.0 if grad is None else grad
            if _device.is_array(g):
                g = _device.to_host(g)
            if np.ndim(g) != 0:
                raise ValueError(f"{where}: expected grad (the loss's gradient) to be a "
                                 f"number, got shape {np.shape(g)}")
            if n:
                per_row -= float(g) / n   # loss = -mean(output)
        per_row = per_row.astype(dtype)
        k = _device.kernels("cpu")
        head_w, head_b, tails = self._params()
        pending = []   # (Parameter on the GPU, its host gradient to add)

        def accumulator(param):
            """Where the kernels accumulate param's gradient: param.grad on the host;
            None (not computed) for a frozen param, whose gradient stays untouched."""
            if param is None or not param.requires_grad:
                return None
            if not _device.is_device_array(param.grad):
                return param.grad
            pending.append((param, np.zeros(param.shape, x2.dtype)))
            return pending[-1][1]

        g_head = np.zeros(head_lp.shape, x2.dtype)
        g_head[np.arange(n), in_head] = per_row
        grad_in = k.linear_backward(k.log_softmax_backward(g_head, head_lp), x2,
                                    _device.to_host(head_w.data),
                                    grad_weight=accumulator(head_w),
                                    grad_bias=accumulator(head_b))
        for i, picked, relative, xs, hidden, lp in clusters:
            w1, w2 = tails[i - 1]
            g_lp = np.zeros(lp.shape, x2.dtype)
            g_lp[np.arange(picked.size), relative] = per_row[picked]
            g_hidden = k.linear_backward(k.log_softmax_backward(g_lp, lp), hidden,
                                         _device.to_host(w2.data), grad_weight=accumulator(w2))
            grad_in[picked] += k.linear_backward(g_hidden, xs, _device.to_host(w1.data),
                                                 grad_weight=accumulator(w1))
        for param, value in pending:
            _device.update_on_host(param.grad, lambda a, v=value: np.add(a, v, out=a))
        return caller.put(grad_in.reshape(shape))

    # ------------------------------------------------------------- inference
    def log_prob(self, input):
        """(N, n_classes) log-probabilities of every class for input (N, in_features)."""
        x, caller = self._host_input(input, batched_only=True)
        k = _device.kernels("cpu")
        head_w, head_b, _ = self._weights()
        head = k.linear_forward(x, head_w, head_b, "identity", 0.01)
        return caller.put(self._full_log_prob(k, x, head))

    def predict(self, input):
        """(N,) int64: the most likely class of each row of input (N, in_features), as
        ``log_prob(input).argmax(1)``; the tail clusters are computed only for rows whose
        head argmax is a cluster entry (PyTorch's algorithm)."""
        x, caller = self._host_input(input, batched_only=True)
        k = _device.kernels("cpu")
        head_w, head_b, _ = self._weights()
        head = k.linear_forward(x, head_w, head_b, "identity", 0.01)
        output = np.argmax(head, axis=1).astype(np.int64)
        outside = output >= self.shortlist_size
        if outside.any():
            rows = np.flatnonzero(outside)
            full = self._full_log_prob(k, np.ascontiguousarray(x[rows]),
                                       np.ascontiguousarray(head[rows]))
            output[rows] = np.argmax(full, axis=1)
        return caller.put(output)

    def _full_log_prob(self, k, x, head):
        """(N, n_classes) log-probabilities from x and the head's logits."""
        head_lp = k.log_softmax(head)
        out = np.empty((x.shape[0], self.n_classes), x.dtype)
        out[:, :self.shortlist_size] = head_lp[:, :self.shortlist_size]
        _, _, tails = self._weights()
        for i, (w1, w2) in enumerate(tails):
            hidden = k.linear_forward(x, w1, None, "identity", 0.01)
            lp = k.log_softmax(k.linear_forward(hidden, w2, None, "identity", 0.01))
            out[:, self.cutoffs[i]:self.cutoffs[i + 1]] = (
                lp + head_lp[:, self.shortlist_size + i, None])
        return out

    # --------------------------------------------------------------- helpers
    def _host_input(self, input, batched_only=False):
        """(input as a C-contiguous host array checked against the weights' dtype, the
        caller's namespace)."""
        where = self._where()
        check_float_array(where, "input", input, device_ok=True)
        if self._device == "cpu":
            self._arrive("input", input)   # a device array for a host model: its error
        caller = _device.namespace_of(input)
        x = np.ascontiguousarray(_device.to_host(input))
        self._check_dtype(x.dtype, self.head.weight.data.dtype)
        if batched_only and (x.ndim != 2 or x.shape[1] != self.in_features):
            raise RuntimeValueError(
                f"{where}: expected input of shape (N, {self.in_features}), "
                f"got {tuple(x.shape)}")
        return x, caller

    def _params(self):
        """(head.weight, head.bias or None, [(tail[i][0].weight, tail[i][1].weight) per
        cluster]): the Parameters."""
        return (self.head.weight, self.head.bias,
                [(first.weight, second.weight) for first, second in self.tail])

    def _weights(self):
        """As ``_params``, their values on the host (the arrays themselves on the CPU)."""
        head_w, head_b, tails = self._params()
        host = _device.to_host
        return (host(head_w.data), None if head_b is None else host(head_b.data),
                [(host(w1.data), host(w2.data)) for w1, w2 in tails])

    def _where(self):
        return (f"AdaptiveLogSoftmaxWithLoss(in_features={self.in_features}, "
                f"n_classes={self.n_classes}, cutoffs={self.cutoffs[:-1]})")


def _linear(in_features, out_features, dtype):
    """A bias-free Linear(in_features, out_features), also with a zero size (PyTorch's
    tail projection of a cluster whose hidden size rounds down to 0): fastnn's Linear
    needs sizes >= 1, so that one is made 1 x 1 and given its (out, in) zero-size weight."""
    if in_features and out_features:
        return Linear(in_features, out_features, bias=False, dtype=dtype)
    layer = Linear(1, 1, bias=False, dtype=dtype)
    layer.in_features, layer.out_features = in_features, out_features
    layer.weight = Parameter(np.zeros((out_features, in_features), dtype))
    return layer
