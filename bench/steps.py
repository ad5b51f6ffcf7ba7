"""Whole training steps: the MLPs and SmallCNN, on every contender, from the same weights.

A step is forward, softmax cross-entropy, backward and an SGD-with-momentum update
(lr 0.01, momentum 0.9), the loop a user runs. Contenders:

* a fastnn backend name ('numpy', 'numba', 'cython', ...): the layer API
  (``fastnn.models.MLP`` or ``nn.Sequential``, ``nn.CrossEntropyLoss``, ``optim.SGD``)
  run under ``fastnn.use_backend(name)``; ``model.backward(g, need_grad_in=False)``,
  since no contender needs the gradient of the input images;
* 'student': ``bench.student_numpy.StudentMLP``, plain NumPy without fastnn (MLPs only);
* 'torch': the same network in PyTorch (``torch.nn``, ``F.cross_entropy``,
  ``torch.optim.SGD`` with its defaults), weights copied from the fastnn model.

Every contender starts from identical weights and gets the identical batches: each call
takes the next batch of a fixed pool of random images with random labels (at least
POOL_SAMPLES samples, cycled), as training reads new data every step. One fixed batch
repeated for thousands of timed rounds had let the models memorise it: SmallCNN at batch
1 reached a loss of exactly 0 within ten steps, after which the compiled backends (whose
softmax rounds probabilities below float32's normal range to 0) multiplied zero
gradients while PyTorch and the NumPy reference multiplied denormals.
"""
import itertools

import numpy as np

import fastnn
from fastnn import nn, optim

LR = 0.01
MOMENTUM = 0.9
SLOPE = 0.01
SEED = 0

# The MLP steps the issues set targets for: name -> (sizes, activation, batch).
MLP_CONFIGS = {
    "mlp 784-100-10 relu b128": ((784, 100, 10), "relu", 128),
    "mlp 784-1024-1024-10 leaky b32": ((784, 1024, 1024, 10), "leaky_relu", 32),
    "mlp 784-1024-1024-10 leaky b256": ((784, 1024, 1024, 10), "leaky_relu", 256),
}

CNN_BATCH = 128
#: distinct samples a step cycles through (about 12 MB of 28x28 float32 images)
POOL_SAMPLES = 4096


def init_weights(sizes, seed=SEED):
    """[(W (out, in), b (out,))] float32, PyTorch's default Linear init from a fixed seed."""
    rng = np.random.default_rng(seed)
    weights = []
    for fin, fout in zip(sizes[:-1], sizes[1:]):
        bound = 1.0 / np.sqrt(fin)
        weights.append((rng.uniform(-bound, bound, (fout, fin)).astype(np.float32),
                        rng.uniform(-bound, bound, fout).astype(np.float32)))
    return weights


def batch(in_shape, n, classes=10, seed=SEED):
    """A fixed batch: x uniform in [0, 1) like pixels, shape (n, *in_shape); int64 labels."""
    rng = np.random.default_rng(seed + 1)
    x = rng.random((n,) + tuple(in_shape), dtype=np.float32)
    return x, rng.integers(0, classes, size=n).astype(np.int64)


def batch_pool(in_shape, n, classes=10, samples=POOL_SAMPLES, seed=SEED):
    """[(x (n, *in_shape), labels (n,))]: ceil(samples / n) batches, each C-contiguous, the
    first of them ``batch(in_shape, n, classes, seed)``."""
    pool = [batch(in_shape, n, classes, seed)]
    rng = np.random.default_rng(seed + 2)
    for _ in range(-(-samples // n) - 1):
        pool.append((rng.random((n,) + tuple(in_shape), dtype=np.float32),
                     rng.integers(0, classes, size=n).astype(np.int64)))
    return pool


# ------------------------------------------------------------------ fastnn models
def fastnn_mlp(sizes, activation, weights=None):
    """The MLP as users build it: ``fastnn.models.MLP`` when it exists, else Sequential
    of Linear and activation layers; parameters set to ``weights`` (init_weights)."""
    try:
        from fastnn.models import MLP
    except ImportError:
        MLP = None
    if MLP is not None:
        model = MLP(sizes[0], list(sizes[1:-1]), sizes[-1], activation=activation,
                    negative_slope=SLOPE)
    else:
        layers = []
        for i, (fin, fout) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(fin, fout))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU() if activation == "relu" else nn.LeakyReLU(SLOPE))
        model = nn.Sequential(*layers)
    if weights is not None:
        set_parameters(model, [a for pair in weights for a in pair])
    return model


def set_parameters(model, arrays):
    """Copy arrays into model.parameters() in order (shapes must match)."""
    params = list(model.parameters())
    if len(params) != len(arrays):
        raise ValueError(f"set_parameters: model has {len(params)} parameters, got {len(arrays)}")
    for p, a in zip(params, arrays):
        if p.data.shape != a.shape:
            raise ValueError(f"set_parameters: parameter of shape {p.data.shape}, got {a.shape}")
        p.data[...] = a


def fastnn_step(backend_name, model, pool):
    """A callable doing one training step of ``model`` on ``backend_name``, on the next
    (x, labels) of ``pool`` each call. Returns it."""
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    batches = itertools.cycle(pool)

    def step():
        x, labels = next(batches)
        with fastnn.use_backend(backend_name):
            opt.zero_grad()
            loss = loss_fn(model(x), labels)
            model.backward(loss_fn.backward(), need_grad_in=False)
            opt.step()
        return loss
    return step


# ---------------------------------------------------------------- PyTorch models
def torch_mlp(sizes, activation, weights):
    import torch
    layers = []
    for i, (W, b) in enumerate(weights):
        lin = torch.nn.Linear(W.shape[1], W.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(W))
            lin.bias.copy_(torch.from_numpy(b))
        layers.append(lin)
        if i < len(weights) - 1:
            layers.append(torch.nn.ReLU() if activation == "relu" else torch.nn.LeakyReLU(SLOPE))
    return torch.nn.Sequential(*layers)


def torch_step(model, pool):
    """A callable doing one PyTorch training step (zero_grad, forward, CE, backward, SGD)
    on the next (x, labels) of ``pool`` each call."""
    import torch
    import torch.nn.functional as F
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    batches = itertools.cycle([(torch.from_numpy(x), torch.from_numpy(y)) for x, y in pool])

    def step():
        tx, ty = next(batches)
        opt.zero_grad()
        loss = F.cross_entropy(model(tx), ty)
        loss.backward()
        opt.step()
        return loss
    return step


def to_torch(module):
    """A torch.nn module equal to a fastnn module (Sequential trees of the standard
    layers), parameters and buffers copied. Raises TypeError for a layer it cannot map."""
    import torch
    tnn = torch.nn
    kind = type(module).__name__
    if isinstance(module, nn.Sequential):
        return tnn.Sequential(*[to_torch(c) for c in module])
    if kind == "Linear":
        out = tnn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
    elif kind == "Conv2d":
        w = module.weight.data
        out = tnn.Conv2d(w.shape[1], w.shape[0], tuple(w.shape[2:]), stride=_pair(module.stride),
                         padding=_pair(module.padding), bias=module.bias is not None)
    elif kind in ("BatchNorm1d", "BatchNorm2d"):
        out = getattr(tnn, kind)(module.num_features, eps=module.eps, momentum=module.momentum)
    elif kind == "MaxPool2d":
        out = tnn.MaxPool2d(_pair(module.kernel_size), _pair(module.stride), _pair(module.padding))
    elif kind == "AvgPool2d":
        out = tnn.AvgPool2d(_pair(module.kernel_size), _pair(module.stride), _pair(module.padding))
    elif kind == "LeakyReLU":
        out = tnn.LeakyReLU(module.negative_slope)
    elif kind == "Dropout":
        out = tnn.Dropout(module.p)
    elif kind in ("ReLU", "Sigmoid", "Tanh", "Identity", "Flatten", "GELU"):
        out = getattr(tnn, kind)()
    else:
        raise TypeError(f"to_torch: no PyTorch twin for layer {kind}")
    _copy_state(module, out)
    return out


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _copy_state(module, tmodule):
    import torch
    with torch.no_grad():
        for name in ("weight", "bias"):
            p = getattr(module, name, None)
            if p is not None and getattr(tmodule, name, None) is not None:
                getattr(tmodule, name).copy_(torch.from_numpy(np.ascontiguousarray(p.data)))
        for name in ("running_mean", "running_var"):
            b = getattr(module, name, None)
            if b is not None and getattr(tmodule, name, None) is not None:
                getattr(tmodule, name).copy_(torch.from_numpy(np.asarray(b)))


# --------------------------------------------------------------- the step runners
def mlp_step(contender, sizes, activation, batch_size):
    """A callable doing one MLP training step for ``contender`` (see module doc)."""
    weights = init_weights(sizes)
    pool = batch_pool((sizes[0],), batch_size, sizes[-1])
    if contender == "student":
        from .student_numpy import StudentMLP
        model = StudentMLP(weights, activation, SLOPE, LR, MOMENTUM)
        batches = itertools.cycle(pool)
        return lambda: model.step(*next(batches))
    if contender == "torch":
        return torch_step(torch_mlp(sizes, activation, weights), pool)
    return fastnn_step(contender, fastnn_mlp(sizes, activation, weights), pool)


CHECK_STEPS = 4
CHECK_RTOL = 2e-5


def check_step(make, contender, name, reference="numpy", steps=CHECK_STEPS, rtol=CHECK_RTOL):
    """Raise AssertionError unless ``make(contender)``'s training step gives the losses
    ``make(reference)``'s gives over ``steps`` steps (the same weights and batches: each
    loss after the first depends on the updates before it, so a forward, loss, backward
    or optimizer kernel that computes the wrong thing shows). Contenders agree to about
    1e-7 here; a step whose SGD update did nothing differed by 3e-4 at its second loss."""
    def losses(step):
        return [step() for _ in range(steps)]
    assert_same_losses(losses(make(contender)), losses(make(reference)),
                       f"{name}: {contender}'s losses over {steps} training steps differ "
                       f"from the {reference} backend's", rtol)


def checked_mlp_step(contender, sizes, activation, batch, name):
    """mlp_step's callable for contender, once check_step has compared its losses with
    the numpy backend's (the reference, not checked itself); AssertionError where they
    differ. name: the step's name in the message."""
    if contender != "numpy":
        check_step(lambda c: mlp_step(c, sizes, activation, batch), contender, name)
    return mlp_step(contender, sizes, activation, batch)


def check_epoch(contender, data, reference="numpy", batches=CHECK_STEPS, rtol=CHECK_RTOL,
                **mlp):
    """Raise AssertionError unless ``epoch_runner(contender, data=data, **mlp)``'s loop
    gives the losses the ``reference`` backend's gives over its first ``batches``
    batches (the loop timed, stopped early: not a second epoch)."""
    def losses(name):
        return epoch_runner(name, data=data, max_batches=batches, **mlp)()
    assert_same_losses(losses(contender), losses(reference),
                       f"epoch: {contender}'s losses over the epoch's first {batches} "
                       f"batches differ from the {reference} backend's", rtol)


def assert_same_losses(got, expected, message, rtol=CHECK_RTOL):
    """assert_allclose of two lists of losses (floats, NumPy scalars or tensors)."""
    np.testing.assert_allclose([loss_value(v) for v in got], [loss_value(v) for v in expected],
                               rtol=rtol, atol=0, err_msg=message)


def loss_value(loss):
    """A step's loss (a float, a NumPy scalar, a PyTorch tensor) as a float."""
    return float(loss.item() if hasattr(loss, "item") else loss)


def small_cnn():
    """fastnn.models.SmallCNN for 28x28 grey images, 10 classes, from a fixed seed."""
    from fastnn.models import SmallCNN
    fastnn.manual_seed(SEED)
    return SmallCNN()


def cnn_step(contender, batch_size=CNN_BATCH):
    """A callable doing one SmallCNN training step (student: not applicable)."""
    if contender == "student":
        raise ValueError("cnn_step: the student loop is an MLP only")
    model = small_cnn()
    pool = batch_pool((1, 28, 28), batch_size)
    if contender == "torch":
        return torch_step(to_torch(model), pool)
    return fastnn_step(contender, model, pool)


# ------------------------------------------------------------------------- epoch
def epoch_runner(contender, sizes=(784, 100, 10), activation="relu", batch_size=128, data=None,
                 max_batches=None):
    """A callable training one full epoch of Fashion-MNIST (60000 images, shuffled
    batches from a seeded DataLoader) with the MLP, returning its losses (the loss
    objects, one a batch, unconverted). ``data``: (x_train, y_train); max_batches: stop
    after that many batches (check_epoch's few)."""
    from fastnn.data import DataLoader
    x_train, y_train = data
    weights = init_weights(sizes)
    loader = DataLoader(x_train, y_train, batch_size=batch_size, shuffle=True, seed=SEED)

    def batches():
        return itertools.islice(loader, max_batches)
    if contender == "student":
        from .student_numpy import StudentMLP
        model = StudentMLP(weights, activation, SLOPE, LR, MOMENTUM)

        def run():
            return [model.step(xb, yb) for xb, yb in batches()]
        return run
    if contender == "torch":
        import torch
        import torch.nn.functional as F
        tmodel = torch_mlp(sizes, activation, weights)
        opt = torch.optim.SGD(tmodel.parameters(), lr=LR, momentum=MOMENTUM)

        def run():
            losses = []
            for xb, yb in batches():
                opt.zero_grad()
                loss = F.cross_entropy(tmodel(torch.from_numpy(xb)), torch.from_numpy(yb))
                loss.backward()
                opt.step()
                losses.append(loss)
            return losses
        return run
    model = fastnn_mlp(sizes, activation, weights)
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)

    def run():
        losses = []
        with fastnn.use_backend(contender):
            for xb, yb in batches():
                opt.zero_grad()
                losses.append(loss_fn(model(xb), yb))
                model.backward(loss_fn.backward(), need_grad_in=False)
                opt.step()
        return losses
    return run


def load_fashion_mnist_train():
    """(x_train (60000, 784) float32, y_train (60000,) int64), or None when absent."""
    from fastnn.data import load
    try:
        x, y, _, _ = load("fashion-mnist", flatten=True)
    except FileNotFoundError:
        return None
    return x, y


def mlp_step_flops(sizes, batch_size):
    """FLOPs of the matrix products of one MLP training step: 2*N*in*out forward, twice
    that backward (weight and input gradients; the first layer's input gradient is
    computed by PyTorch-style frameworks only when asked, so it is not counted)."""
    flops = 0.0
    for i, (fin, fout) in enumerate(zip(sizes[:-1], sizes[1:])):
        per = 2.0 * batch_size * fin * fout
        flops += per * (2 if i == 0 else 3)
    return flops


def model_step_flops(model, input_shape):
    """FLOPs of the products (Conv2d, Linear) of one training step of a Sequential model
    on a batch of ``input_shape`` (N, ...), counted as in ``mlp_step_flops``."""
    shape, flops, first = tuple(input_shape), 0.0, True
    for layer in model:
        out = tuple(layer.infer_shape(shape, np.dtype(np.float32)))
        kind = type(layer).__name__
        if kind == "Linear":
            per = 2.0 * out[0] * layer.in_features * layer.out_features
        elif kind == "Conv2d":
            c_out, c_in, kh, kw = layer.weight.data.shape
            per = 2.0 * out[0] * c_out * out[2] * out[3] * c_in * kh * kw
        else:
            per = 0.0
        if per:
            flops += per * (2 if first else 3)
            first = False
        shape = out
    return flops
