"""Muon with PyTorch's rule (torch.optim.Muon): momentum, then the Newton-Schulz
orthogonalisation of each 2-D parameter's update, in bfloat16 as PyTorch runs it.

NumPy has no bfloat16, so the iteration is emulated: the values live in float32 arrays
and are rounded to bfloat16 (round to nearest, ties to even, as PyTorch converts) after
every operation PyTorch runs in bfloat16. A matrix product of bfloat16 values has exact
float32 products and a float32 sum, rounded once (as PyTorch's CPU bfloat16 GEMM, its
alpha/beta terms included), so the result is PyTorch's but for the order of the float32
summation: for small matrices it is bit for bit PyTorch's; for larger ones a rare
rounding-boundary flip grows over the iterations into differences of a few bfloat16
ulps (about 1% of an element).
"""
import math
import numbers

import numpy as np

from .host import HostOptimizer, lerp_

# Keller Jordan's constants, PyTorch's defaults
EPS = 1e-7
DEFAULT_A = 3.4445
DEFAULT_B = -4.7750
DEFAULT_C = 2.0315
DEFAULT_NS_STEPS = 5

_HIGH = np.uint32(0xFFFF0000)
_HALF = np.uint32(0x7FFF)


def round_bfloat16(x, bits):
    """Round the float32 array x to bfloat16 values in place (nearest, ties to even).
    bits: a uint32 scratch array of x's shape. A NaN stays a NaN (a NaN whose payload
    lies in the low 16 bits only must not round to inf: see to_bfloat16)."""
    u = x.view(np.uint32)
    np.right_shift(u, 16, out=bits)
    np.bitwise_and(bits, 1, out=bits)
    bits += _HALF
    u += bits
    np.bitwise_and(u, _HIGH, out=u)
    return x


def bfloat16_scalar(value):
    """A number rounded to bfloat16 (through float32, as PyTorch converts), as a
    np.float32."""
    x = np.float32(value)
    if np.isnan(x):
        return np.float32(np.nan)
    u = int(x.view(np.uint32))
    u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
    return np.uint32(u).view(np.float32)


def to_bfloat16(out, a, bits):
    """out (float32) = a rounded to bfloat16 (a float32 or float64, of out's shape):
    PyTorch's ``a.bfloat16()``, a float64 through float32 as its conversion does."""
    np.copyto(out, a, casting="same_kind")
    if not np.isfinite(np.sum(out)):  # (rare) make every NaN a quiet NaN first
        np.copyto(out, np.float32(np.nan), where=np.isnan(out))
    return round_bfloat16(out, bits)


def zeropower_via_newtonschulz(update, ns_coefficients, ns_steps, eps, work):
    """PyTorch's ``_zeropower_via_newtonschulz``: the (approximate) orthogonalisation of
    a 2-D update in bfloat16. update: float32 or float64 (rows, cols); work: a Workspace.
    Returns a float32 array of bfloat16 values of update's shape (a view of scratch,
    transposed when rows > cols)."""
    a, b, c = (np.float32(v) for v in ns_coefficients)
    rows, cols = update.shape
    tall = rows > cols
    k, n = (cols, rows) if tall else (rows, cols)
    x = work.get("ns_x", (k, n), np.float32)
    x_next = work.get("ns_x_next", (k, n), np.float32)
    bits = work.get("ns_bits", (k, n), np.uint32)
    gram = work.get("ns_gram", (k, k), np.float32)
    gram_update = work.get("ns_gram_update", (k, k), np.float32)
    gram_bits = work.get("ns_gram_bits", (k, k), np.uint32)
    to_bfloat16(x, update.T if tall else update, bits)
    # ensure spectral norm is at most 1: x / max(||x||, eps), each in bfloat16
    flat = x.reshape(-1)
    norm = bfloat16_scalar(np.sqrt(np.dot(flat, flat)))
    floor = bfloat16_scalar(eps)
    if norm < floor:  # (a NaN norm stays, as PyTorch's clamp keeps it)
        norm = floor
    x /= norm
    round_bfloat16(x, bits)
    for _ in range(ns_steps):
        np.matmul(x, x.T, out=gram)
        round_bfloat16(gram, gram_bits)
        # addmm(gram, gram, gram, beta=b, alpha=c)
        np.matmul(gram, gram, out=gram_update)
        gram_update *= c
        gram *= b
        gram_update += gram
        round_bfloat16(gram_update, gram_bits)
        # addmm(x, gram_update, x, beta=a)
        np.matmul(gram_update, x, out=x_next)
        x *= a
        x_next += x
        round_bfloat16(x_next, bits)
        x, x_next = x_next, x
    return x.T if tall else x


def adjust_lr(lr, adjust_lr_fn, shape):
    """PyTorch's ``_adjust_lr``: lr scaled by sqrt(max(1, A / B)) ('original', the
    default) or 0.2 sqrt(max(A, B)) ('match_rms_adamw') for a parameter of shape (A, B)."""
    rows, cols = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        ratio = math.sqrt(max(1, rows / cols))
    elif adjust_lr_fn == "match_rms_adamw":
        ratio = 0.2 * math.sqrt(max(rows, cols))
    else:
        ratio = 1.0
    return lr * ratio


class Muon(HostOptimizer):
    """Muon(params, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
    ns_coefficients=(3.4445, -4.775, 2.0315), eps=1e-7, ns_steps=5, adjust_lr_fn=None).

    PyTorch's update (torch.optim.Muon) of each 2-D parameter (rows A, columns B):
    B_t = lerp(B_{t-1}, g, 1 - momentum) (the buffer starts at zero); U = lerp(g, B_t,
    momentum) if nesterov else B_t; O = ns_steps Newton-Schulz iterations on U in
    bfloat16 (X = U / max(||U||, eps), transposed when A > B; X = a X + (b G + c G G) X
    with G = X X^T); p *= 1 - lr * weight_decay; p -= lr' O with lr' = lr sqrt(max(1,
    A/B)) (adjust_lr_fn None or 'original') or lr 0.2 sqrt(max(A, B))
    ('match_rms_adamw'). See this module's docstring for the bfloat16 emulation.

    Only 2-D parameters (a ValueError otherwise, at construction and in
    add_param_group); optimise biases and others with another optimizer, e.g. AdamW.
    State (PyTorch's name): momentum_buffer, on the host in the parameter's dtype; no
    step count, as in PyTorch. ns_steps must be an int below 100 and ns_coefficients
    three numbers (PyTorch checks these at the first step; here at construction).
    """

    hyperparameters = ("lr", "weight_decay", "momentum", "nesterov", "ns_coefficients",
                       "eps", "ns_steps", "adjust_lr_fn")
    torch_flags = {}  # PyTorch's Muon takes none of maximize, foreach, ...

    def __init__(self, params, lr=1e-3, weight_decay=0.1, momentum=0.95, nesterov=True,
                 ns_coefficients=(DEFAULT_A, DEFAULT_B, DEFAULT_C), eps=EPS,
                 ns_steps=DEFAULT_NS_STEPS, adjust_lr_fn=None):
        super().__init__(params, {"lr": lr, "weight_decay": weight_decay,
                                  "momentum": momentum, "nesterov": nesterov,
                                  "ns_coefficients": ns_coefficients, "eps": eps,
                                  "ns_steps": ns_steps, "adjust_lr_fn": adjust_lr_fn})

    # ------------------------------------------------------------------ checks
    def _check(self, group):
        """PyTorch's checks, with its messages; NaN fails them as in PyTorch."""
        lr = group["lr"]
        if not 0.0 <= self._real("lr", lr):
            raise ValueError(f"Muon: invalid lr: {lr!r} (Learning rate should be >= 0 but "
                             f"is: {lr})")
        momentum = group["momentum"]
        if not 0.0 <= self._real("momentum", momentum):
            raise ValueError(f"Muon: invalid momentum: {momentum!r} (momentum should be "
                             f">= 0 but is: {momentum})")
        weight_decay = group["weight_decay"]
        if not 0.0 <= self._real("weight_decay", weight_decay):
            raise ValueError(f"Muon: invalid weight_decay: {weight_decay!r} (weight decay "
                             f"should be >= 0 but is: {weight_decay})")
        fn = group["adjust_lr_fn"]
        if fn is not None and fn not in ("original", "match_rms_adamw"):
            raise ValueError(f"Muon: invalid adjust_lr_fn: {fn!r} (Adjust learning rate "
                             f"function {fn} is not supported; expected None, 'original' "
                             f"or 'match_rms_adamw')")
        self._flag(group, "nesterov")
        self._real("eps", group["eps"])
        steps = group["ns_steps"]
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral):
            raise TypeError(f"Muon: expected ns_steps to be an int, got {steps!r} "
                            f"({type(steps).__name__})")
        if not 0 <= steps < 100:
            raise ValueError(f"Muon: invalid ns_steps: {steps!r} (Number of steps must be "
                             f"less than 100 for computational efficiency; and >= 0)")
        coefficients = group["ns_coefficients"]
        if not isinstance(coefficients, (tuple, list)) or len(coefficients) != 3:
            raise ValueError(f"Muon: invalid ns_coefficients: {coefficients!r} "
                             f"(Coefficients must be a tuple of exactly 3 values)")
        for i, value in enumerate(coefficients):
            self._real(f"ns_coefficients[{i}]", value)

    def _make_group(self, group):
        group = super()._make_group(group)
        for p in group["params"]:
            if p.data.ndim != 2:
                raise ValueError(f"Muon only supports 2D parameters whereas we found a "
                                 f"parameter with size: {tuple(p.data.shape)}")
        return group

    # ------------------------------------------------------------------- state
    def _new_state(self, shape, dtype):
        return {"momentum_buffer": np.zeros(shape, dtype)}

    def _validate_entry(self, where, entry, shape, dtype):
        unknown = [k for k in entry if k != "momentum_buffer"]
        if unknown:
            raise ValueError(f"{where}: unexpected state {unknown}; expected "
                             f"['momentum_buffer']")
        return {"momentum_buffer": self._state_array(where, "momentum_buffer",
                                                     entry["momentum_buffer"], shape,
                                                     dtype)}

    # -------------------------------------------------------------------- step
    def _group_hyper(self, group):
        return {"lr": float(group["lr"]), "weight_decay": float(group["weight_decay"]),
                "momentum": float(group["momentum"]), "nesterov": group["nesterov"],
                "ns_coefficients": tuple(float(v) for v in group["ns_coefficients"]),
                "eps": float(group["eps"]), "ns_steps": int(group["ns_steps"]),
                "adjust_lr_fn": group["adjust_lr_fn"]}

    def _update_param(self, hyper, data, grad, state):
        """PyTorch's ``_single_tensor_muon`` for one parameter, through scratch."""
        if data.size == 0:  # (PyTorch divides by an empty parameter's zero width)
            return
        momentum = hyper["momentum"]
        buf = state["momentum_buffer"]
        scratch = self._work.get("update", data.shape, data.dtype)
        lerp_(buf, grad, 1 - momentum, tmp=scratch)
        if hyper["nesterov"]:
            update = lerp_(grad, buf, momentum, out=scratch)
        else:
            update = buf
        ortho = zeropower_via_newtonschulz(update, hyper["ns_coefficients"],
                                           hyper["ns_steps"], hyper["eps"], self._work)
        adjusted_lr = adjust_lr(hyper["lr"], hyper["adjust_lr_fn"], data.shape)
        decay = 1 - hyper["lr"] * hyper["weight_decay"]
        if decay != 1:
            data *= decay
        np.multiply(ortho, data.dtype.type(-adjusted_lr), out=scratch)
        data += scratch
