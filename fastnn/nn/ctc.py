"""CTCLoss: the connectionist temporal classification loss (PyTorch's), NumPy on the host.

The forward is the alpha recursion of Graves et al. (2006) in log space, the backward the
beta recursion and the state occupancies, each vectorised over the batch and the extended
label sequence (blank, l1, blank, l2, ..., blank), with one loop over time; the
log-sum-exp steps are PyTorch's CPU kernel's (LossCTC.cpp), term for term.
"""
import numpy as np

from .. import device as _device
from ..errors import DtypeError, RuntimeValueError
from ..validation import check_flag, check_float_array
from .loss import Loss


class CTCLoss(Loss):
    """-log p(target | log_probs) summed over the alignments, per sequence.

    ``loss(log_probs, targets, input_lengths, target_lengths)``:

    * log_probs: (T, N, C) log-probabilities (a ``LogSoftmax(dim=2)`` output), or one
      unbatched sequence (T, C); float32 or float64.
    * targets: integer class indices, padded (N, S) (row b's first target_lengths[b]
      entries count; S >= max(target_lengths)), or all the targets concatenated (1-D, of
      length sum(target_lengths)); for an unbatched sequence (S,) with exactly
      target_length entries (or (1, S) padded). Targets lie in [0, C); the blank is not a
      label (PyTorch's documented rule; a blank target is computed as PyTorch computes it).
    * input_lengths, target_lengths: one integer per sequence ((N,), or an int / () for an
      unbatched one), 0 <= input_lengths <= T.

    blank: the blank's class index; reduction: 'mean' (each loss divided by its target
    length, at least 1, then the mean over the batch: PyTorch's), 'sum' or 'none' ((N,),
    or () unbatched); zero_infinity: impossible alignments (a target too long for its
    input: loss inf) count 0, with a zero gradient.

    ``backward(grad=None)`` -> the gradient w.r.t. log_probs in PyTorch's form
    ``exp(log_probs) - occupancy`` (zero past each input length): the gradient w.r.t. the
    logits of a log_softmax, which is what log_probs are taken to be. Through a
    ``LogSoftmax`` backward it gives the exact gradient of the logits, as autograd does
    in PyTorch; it is not the plain derivative w.r.t. log_probs (which lacks the
    exp(log_probs) term), exactly as PyTorch's CTC backward is not. An impossible
    alignment's gradient is NaN unless zero_infinity (as PyTorch's).
    """

    def __init__(self, blank=0, reduction="mean", zero_infinity=False):
        super().__init__(reduction)
        if isinstance(blank, bool) or not isinstance(blank, (int, np.integer)) or blank < 0:
            raise ValueError(f"CTCLoss: expected blank to be an int >= 0, got {blank!r}")
        self.blank = int(blank)
        self.zero_infinity = check_flag("CTCLoss", "zero_infinity", zero_infinity)
        self._ctx = None

    def __call__(self, log_probs, targets, input_lengths, target_lengths):
        return self.forward(log_probs, targets, input_lengths, target_lengths)

    def forward(self, log_probs, targets, input_lengths, target_lengths):
        """The loss (a NumPy float64; 'none': (N,), or () unbatched) of log_probs (T, N, C)
        (or (T, C)), targets (N, S) padded or concatenated, and input_lengths,
        target_lengths (N,) (see the class docstring)."""
        where = self._where()
        lp = check_float_array(where, "log_probs", log_probs, device_ok=True)
        if lp.ndim not in (2, 3):   # (PyTorch's RuntimeError)
            raise RuntimeValueError(f"{where}: expected log_probs to be 2-D or 3-D, got shape "
                                    f"{tuple(lp.shape)}")
        namespace = _device.namespace_of(lp)
        batched = lp.ndim == 3
        lp = _device.to_host(lp)
        lp = lp if batched else lp[:, None, :]
        t_max, n, c = lp.shape
        if 0 in lp.shape:
            raise RuntimeValueError(f"{where}: log_probs must not be empty, got shape "
                                    f"{tuple(lp.shape) if batched else (t_max, c)}")
        if self.blank >= c:
            raise RuntimeValueError(f"{where}: blank {self.blank} is not a class index (C = {c})")
        t_len = _lengths(where, "input_lengths", input_lengths, n)
        l_len = _lengths(where, "target_lengths", target_lengths, n)
        if t_len.max() > t_max:
            raise RuntimeValueError(f"{where}: expected input_lengths to have values at most "
                                    f"{t_max} (log_probs' length), got {t_len.max()}")
        labels = self._labels(where, targets, l_len, n, c)
        ext, valid, skip = _extended(labels, l_len, self.blank)
        lp = np.ascontiguousarray(lp)
        lpe = lp[:, np.arange(n)[:, None], ext]   # (T, N, S'): log p of each state
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            alpha = _alphas(lpe, l_len, skip)
            nll = _nll(alpha, t_len, l_len)
        losses = np.where(nll == np.inf, lp.dtype.type(0), nll) if self.zero_infinity else nll
        self._ctx = (lp, lpe, alpha, nll, ext, valid, skip, t_len, l_len, batched, namespace)
        if self.reduction == "none":
            return losses if batched else losses[0]
        if self.reduction == "sum":
            return np.float64(losses.sum(dtype=np.float64))
        per_label = losses / np.maximum(l_len, 1).astype(lp.dtype)
        return np.float64(per_label.mean(dtype=np.float64))

    def backward(self, grad=None):
        """The gradient w.r.t. log_probs (its shape and dtype; see the class docstring)
        for grad: a number for 'mean' and 'sum', for 'none' one per sequence ((N,), or a
        number unbatched); None: 1."""
        if self._ctx is None:
            raise RuntimeError(f"{self._where()}: backward called before forward")
        lp, lpe, alpha, nll, ext, valid, skip, t_len, l_len, batched, namespace = self._ctx
        dtype = lp.dtype.type
        t_max, n, c = lp.shape
        gr = self._per_sequence(grad, n, batched, dtype)
        if self.reduction == "mean":
            gr = gr / dtype(n) / np.maximum(l_len, 1).astype(lp.dtype)
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            occupancy = _occupancies(lpe, alpha, nll, ext, valid, skip, t_len, l_len, self.blank)
            counted = valid[None] & (np.arange(t_max)[:, None, None] < t_len[None, :, None])
            flat = ((np.arange(t_max)[:, None, None] * n + np.arange(n)[None, :, None]) * c
                    + ext[None])
            gamma = np.bincount(flat[counted], weights=occupancy[counted],
                                minlength=t_max * n * c).reshape(t_max, n, c)
            # a class no state of the sequence has: PyTorch's exp(log(0) + nll - lp), 0
            # but NaN where nll is inf or lp -inf
            has_state = np.bincount((np.arange(n)[:, None] * c + ext)[valid],
                                    minlength=n * c).reshape(n, c) > 0
            stateless = np.exp(-np.inf + nll[None, :, None] - lp)
            gamma = np.where(has_state[None], gamma.astype(lp.dtype), stateless)
            grad_lp = (np.exp(lp) - gamma) * gr[None, :, None]
        keep = np.arange(t_max)[:, None] < t_len[None, :]
        if self.zero_infinity:
            keep = keep & (nll != np.inf)[None, :]
        grad_lp = np.where(keep[:, :, None], grad_lp, dtype(0)).astype(lp.dtype)
        return namespace.put(grad_lp if batched else grad_lp[:, 0])

    def _per_sequence(self, grad, n, batched, dtype):
        """The gradient w.r.t. each sequence's loss, (N,)."""
        if grad is None:
            return np.ones(n, dtype)
        if np.ndim(grad) == 0:
            return np.full(n, grad, dtype)
        expected = (n,) if batched else ()
        if self.reduction != "none" or np.shape(grad) != expected:
            raise ValueError(f"{self._where()}.backward: expected grad to be a number"
                             + (f" or of shape {expected}" if self.reduction == "none" else "")
                             + f", got shape {np.shape(grad)}")
        return np.asarray(_device.to_host(grad), dtype).reshape(n)

    def _labels(self, where, targets, l_len, n, c):
        """(N, max target length) int64 labels, padded with the blank."""
        if not _device.is_array(targets) or targets.dtype.kind not in "iu":
            got = targets.dtype if _device.is_array(targets) else type(targets).__name__
            raise DtypeError(f"{where}: expected targets to be an integer array, got {got}")
        targets = _device.to_host(targets)
        s = int(l_len.max(initial=0))
        positions = np.arange(s)[None, :]
        inside = positions < l_len[:, None]
        if targets.ndim == 1:   # concatenated
            if targets.shape[0] != l_len.sum():
                raise RuntimeValueError(f"{where}: expected concatenated targets of length "
                                        f"sum(target_lengths) = {l_len.sum()}, got "
                                        f"{targets.shape[0]}")
            starts = np.cumsum(l_len) - l_len
            picked = targets[np.where(inside, starts[:, None] + positions, 0)] if s else \
                np.zeros((n, 0), targets.dtype)
        elif targets.ndim == 2:   # padded
            if targets.shape[0] != n or targets.shape[1] < s:
                raise RuntimeValueError(f"{where}: expected padded targets of shape ({n}, S) with "
                                        f"S >= max(target_lengths) = {s}, got {targets.shape}")
            picked = targets[:, :s]
        else:
            raise RuntimeValueError(f"{where}: expected targets of shape (N, S) or 1-D "
                                    f"(concatenated), got {targets.shape}")
        labels = np.where(inside, picked.astype(np.int64), self.blank)
        if labels.size and (labels.min() < 0 or labels.max() >= c):
            raise ValueError(f"{where}: targets out of range: expected class indices in "
                             f"[0, {c}), got min {labels.min()} and max {labels.max()}")
        return labels

    def _options(self):
        options = [f"blank={self.blank}"] if getattr(self, "blank", 0) else []
        return options + (["zero_infinity=True"] if getattr(self, "zero_infinity", False)
                          else [])


def _lengths(where, name, value, n):
    """value (an int, a sequence or an array of integers, N of them) as int64 (N,)."""
    if _device.is_array(value):
        value = _device.to_host(value)
    array = np.asarray(value)
    if array.dtype.kind not in "iu":   # (bools and floats too)
        raise DtypeError(f"{where}: expected {name} to be integers, got {array.dtype}")
    if array.ndim > 1 or array.size != n:
        raise RuntimeValueError(f"{where}: expected {name} to hold one length per sequence ({n}), "
                                f"got shape {array.shape}")
    array = array.astype(np.int64).reshape(n)
    if array.min() < 0:
        raise RuntimeValueError(f"{where}: expected {name} to have values at least 0, got "
                                f"{array.min()}")
    return array


def _extended(labels, l_len, blank):
    """(ext (N, S') the extended label sequences (blank between and around the labels,
    S' = 2 max(L) + 1, the blank past each 2 L_b), valid (N, S') states s <= 2 L_b,
    skip (N, S') where the transition s - 2 -> s is allowed (a label differing from the
    one two states back))."""
    n, s = labels.shape
    ext = np.full((n, 2 * s + 1), blank, np.int64)
    ext[:, 1::2] = labels
    states = np.arange(2 * s + 1)
    valid = states[None, :] <= 2 * l_len[:, None]
    skip = np.zeros_like(valid)
    skip[:, 2:] = ext[:, 2:] != ext[:, :-2]
    return ext, valid, skip


def _log_add3(a, b, c):
    """log(exp(a) + exp(b) + exp(c)) as PyTorch's kernel computes it (max shifted; 0 as
    the shift where all three are -inf)."""
    m = np.maximum(np.maximum(a, b), c)
    m = np.where(m == -np.inf, m.dtype.type(0), m)
    return np.log(np.exp(a - m) + np.exp(b - m) + np.exp(c - m)) + m


def _shifted(x, k):
    """x (N, S') moved k states right along the last axis (-inf enters): x[:, s - k]."""
    out = np.full_like(x, -np.inf)
    out[:, k:] = x[:, :x.shape[1] - k]
    return out


def _alphas(lpe, l_len, skip):
    """log alpha (T, N, S'), the forward variables (rows past an input's length are the
    recursion run on, and never read)."""
    t_max, n, states = lpe.shape
    neg = lpe.dtype.type(-np.inf)
    alpha = np.full(lpe.shape, neg)
    alpha[0, :, 0] = lpe[0, :, 0]
    if states > 1:
        alpha[0, :, 1] = np.where(l_len > 0, lpe[0, :, 1], neg)
    for t in range(1, t_max):
        prev = alpha[t - 1]
        la3 = np.where(skip, _shifted(prev, 2), neg)
        alpha[t] = _log_add3(prev, _shifted(prev, 1), la3) + lpe[t]
    return alpha


def _nll(alpha, t_len, l_len):
    """-log p per sequence: the log-sum of the last two states' alphas at its last step
    (one state for an empty target; 0 or inf for an empty input)."""
    n = alpha.shape[1]
    rows = np.arange(n)
    last = np.maximum(t_len - 1, 0)
    l1 = alpha[last, rows, 2 * l_len]
    l2 = np.where(l_len > 0, alpha[last, rows, np.maximum(2 * l_len - 1, 0)], -np.inf)
    m = np.maximum(l1, l2)
    m = np.where(m == -np.inf, m.dtype.type(0), m)
    both = np.log(np.exp(l1 - m) + np.exp(l2 - m)) + m
    log_likelihood = np.where(l_len == 0, l1, both)
    empty = np.where(l_len == 0, 0.0, -np.inf).astype(alpha.dtype)
    return -np.where(t_len == 0, empty, log_likelihood).astype(alpha.dtype)


def _occupancies(lpe, alpha, nll, ext, valid, skip, t_len, l_len, blank):
    """exp(log alpha + log beta - lp + nll) per (t, b, s): each state's posterior
    occupancy, the beta recursion run backwards from each sequence's last step (PyTorch's
    eq. (10)-(11)), PyTorch's sum over the states of a class divided by its probability."""
    t_max, n, states = lpe.shape
    neg = lpe.dtype.type(-np.inf)
    rows = np.arange(n)
    top = 2 * l_len
    skip_next = np.zeros_like(skip)   # s -> s + 2 allowed
    skip_next[:, :-2] = skip[:, 2:]
    has_labels = l_len > 0
    occupancy = np.empty(lpe.shape, lpe.dtype)
    beta = np.full((n, states), neg)
    for t in range(t_max - 1, -1, -1):
        start = np.full((n, states), neg)
        start[rows, top] = lpe[t, rows, top]
        below = np.maximum(top - 1, 0)
        start[rows, below] = np.where(has_labels, lpe[t, rows, below], start[rows, below])
        lb3 = np.where(skip_next, _shifted(beta[:, ::-1], 2)[:, ::-1], neg)
        step = _log_add3(beta, _shifted(beta[:, ::-1], 1)[:, ::-1], lb3) + lpe[t]
        beta = np.where((t == t_len - 1)[:, None], start,
                        np.where((t < t_len - 1)[:, None], step, neg))
        beta = np.where(valid, beta, neg)
        occupancy[t] = np.exp(alpha[t] + beta - lpe[t] + nll[:, None])
    # PyTorch's last step assigns the two end states' terms in turn: where the last label
    # is the blank itself, the second replaces the first
    last = np.maximum(t_len - 1, 0)
    quirk = has_labels & (ext[rows, np.maximum(top - 1, 0)] == blank) & (t_len > 0)
    occupancy[last[quirk], rows[quirk], top[quirk]] = 0
    return occupancy
