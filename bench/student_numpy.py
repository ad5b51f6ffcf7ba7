"""The MLP training step as a student writes it in plain NumPy: no fastnn at all.

This is the baseline of issue 2's requirement (fastnn's numpy backend may cost at most
1.3 times this loop). It is written the straightforward way a good student would
(matrix products with ``@``, activations with ``np.maximum``/``np.where``, a stable
softmax, the usual backward formulas, SGD with momentum in PyTorch's form), without
buffer reuse or other tricks.

Weights use PyTorch's layout: W (out_features, in_features), b (out_features,).
"""
import numpy as np


class StudentMLP:
    """Linear layers with an activation between them; softmax cross-entropy; SGD.

    weights: list of (W: (out, in), b: (out,)) pairs, copied; activation: 'relu' or
    'leaky_relu'; lr, momentum: SGD with momentum, velocity starting at zero.
    """

    def __init__(self, weights, activation="relu", negative_slope=0.01, lr=0.01, momentum=0.9):
        if activation not in ("relu", "leaky_relu"):
            raise ValueError("StudentMLP: activation must be relu or leaky_relu, "
                             f"got {activation!r}")
        self.params = [p.copy() for pair in weights for p in pair]
        self.velocity = [np.zeros_like(p) for p in self.params]
        self.activation = activation
        self.slope = negative_slope
        self.lr = lr
        self.momentum = momentum

    def _act(self, z):
        if self.activation == "relu":
            return np.maximum(z, 0)
        return np.where(z > 0, z, self.slope * z)

    def _act_grad(self, z):
        if self.activation == "relu":
            return (z > 0).astype(z.dtype)
        return np.where(z > 0, 1.0, self.slope).astype(z.dtype)

    def forward(self, x):
        """x: (N, in). Returns logits (N, classes) and the cache the backward needs."""
        inputs, pre = [], []
        a = x
        n_layers = len(self.params) // 2
        for i in range(n_layers):
            W, b = self.params[2 * i], self.params[2 * i + 1]
            inputs.append(a)
            z = a @ W.T + b
            if i < n_layers - 1:
                pre.append(z)
                a = self._act(z)
            else:
                a = z
        return a, (inputs, pre)

    def loss_and_grad(self, logits, labels):
        """Mean softmax cross-entropy of logits (N, C) with int labels (N,) and d/dlogits."""
        n = logits.shape[0]
        shifted = logits - logits.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        probs = exp / exp.sum(axis=1, keepdims=True)
        loss = -np.log(probs[np.arange(n), labels]).mean()
        dlogits = probs
        dlogits[np.arange(n), labels] -= 1
        dlogits /= n
        return float(loss), dlogits

    def backward(self, dout, cache):
        """Gradients of every parameter, same order as self.params."""
        inputs, pre = cache
        grads = [None] * len(self.params)
        for i in reversed(range(len(self.params) // 2)):
            W = self.params[2 * i]
            grads[2 * i] = dout.T @ inputs[i]
            grads[2 * i + 1] = dout.sum(axis=0)
            if i > 0:
                dout = (dout @ W) * self._act_grad(pre[i - 1])
        return grads

    def sgd(self, grads):
        for p, v, g in zip(self.params, self.velocity, grads):
            v *= self.momentum
            v += g
            p -= self.lr * v

    def step(self, x, labels):
        """One training step: forward, loss, backward, SGD. Returns the loss."""
        logits, cache = self.forward(x)
        loss, dlogits = self.loss_and_grad(logits, labels)
        self.sgd(self.backward(dlogits, cache))
        return loss
