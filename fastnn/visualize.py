"""Class visualisation: optimise an input image so a trained classifier's class logit grows.

Gradient ascent on the input through the model's explicit backward pass, regularised as in
the classic recipe: random jitter (roll) before each step, an L2 penalty (weight decay) on the
image, gradient clipping, a Gaussian blur every few steps, clamping to [0, 1], and optionally
several scales (optimise a small image first, then upsample and continue; the gradient goes
back through the upsampling exactly, by the interpolation's transpose).
"""
import numbers

import numpy as np

from .nn.module import evaluating
from .train import progress_bar
from .validation import check_non_negative_int, check_number


def _flat_features(model):
    """The number of input features of a classifier that takes flat rows (N, features):
    an MLP's (its config's in_features) or a Sequential's whose first layer is a Linear
    (fastnn.save of the README's ten lines: no config); None for an image model."""
    config = getattr(model, "config", {}) or {}
    if "in_features" in config:
        return config["in_features"]
    from .nn import Linear, Sequential
    if isinstance(model, Sequential) and len(model) and isinstance(model[0], Linear):
        return model[0].in_features
    return None


#: the image sizes tried, in order, for an image model that does not say its own
#: (MNIST's and Fashion-MNIST's, CIFAR-10's, then common larger ones)
_TRIED_SIZES = (28, 32, 64, 96, 128, 224)


def image_shape(model, shape=None):
    """(C, H, W) of the images a saved classifier takes: shape when given; else from its
    config (fastnn's models), its first Linear layer (a flat input), or, for any other
    image model, the first layer's in_channels and the first of ``_TRIED_SIZES`` a
    forward of a blank image in eval mode goes through (without gradients or state
    changes)."""
    if shape is not None:
        return _checked_shape(shape)
    config = getattr(model, "config", {}) or {}
    features = _flat_features(model)
    if features is not None:
        # a flat MLP input: grey (H*W, MNIST's 784) or colour (3*H*W channel-major, as
        # CIFAR-10's 3072 are flattened); 3 s^2 is never a square, so no case is both
        for channels in (1, 3):
            side = int(round(np.sqrt(features / channels)))
            if channels * side * side == features:
                return (channels, side, side)
        raise ValueError(f"visualize: cannot view {features} input features as a square "
                         f"image of 1 or 3 channels")
    if "in_channels" in config or "input_size" in config:
        channels = config.get("in_channels", 1)
        size = config.get("input_size", 28)
        return (channels, size, size)
    channels = next((m.in_channels for m in model.modules()
                     if isinstance(getattr(m, "in_channels", None), numbers.Integral)), 1)
    from . import grad_mode
    with evaluating(model), grad_mode.no_grad():
        for size in _TRIED_SIZES:
            blank = np.zeros((1, channels, size, size), _model_dtype(model))
            try:
                model(blank)
            except ValueError:   # (fastnn's shape errors are ValueErrors)
                continue
            return (channels, size, size)
    raise ValueError(f"visualize: cannot tell the image shape this model takes (none of "
                     f"{channels} x {_TRIED_SIZES} square images went through it): give it "
                     f"(shape=(C, H, W); dream: --image-shape C,H,W)")


def _checked_shape(shape):
    """shape as a (C, H, W) tuple of positive ints."""
    items = tuple(shape) if isinstance(shape, (tuple, list)) else None
    if (items is None or len(items) != 3
            or not all(isinstance(n, numbers.Integral) and not isinstance(n, bool) and n > 0
                       for n in items)):
        raise ValueError(f"visualize: expected shape to be (C, H, W), three positive ints, "
                         f"got {shape!r}")
    return tuple(int(n) for n in items)


def _model_input(model, images):
    """(N, C, H, W) images -> what the model's forward takes (flat for an MLP)."""
    if _flat_features(model) is not None:
        return images.reshape(images.shape[0], -1)
    return images


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _blur(img, sigma):
    """Separable Gaussian blur of (C, H, W) with reflect padding."""
    radius = max(1, int(round(2 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    padded = np.pad(img, ((0, 0), (radius, radius), (0, 0)), mode="reflect")
    img = sum(w * padded[:, i:i + img.shape[1], :] for i, w in enumerate(taps))
    padded = np.pad(img, ((0, 0), (0, 0), (radius, radius)), mode="reflect")
    return sum(w * padded[:, :, i:i + img.shape[2]] for i, w in enumerate(taps))


def _interpolation(n_in, size):
    """(size, n_in) matrix of 1-D linear interpolation from n_in samples to size samples,
    the end points kept (the rows sum to 1)."""
    pos = np.linspace(0, n_in - 1, size)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n_in - 1)
    frac = pos - lo
    matrix = np.zeros((size, n_in))
    rows = np.arange(size)
    np.add.at(matrix, (rows, lo), 1 - frac)
    np.add.at(matrix, (rows, hi), frac)
    return matrix


def _resize(img, size):
    """Bilinear resize of (C, h, w) to (C, size, size), or to (C, H, W) for size (H, W)."""
    c, h, w = img.shape
    out_h, out_w = (size, size) if isinstance(size, numbers.Integral) else size
    return _interpolation(h, out_h) @ img @ _interpolation(w, out_w).T


def _resize_backward(grad, h, w):
    """Gradient w.r.t. the (C, h, w) input of ``_resize`` given its (C, H, W) output
    gradient: the transposed (adjoint) interpolation, exact since the resize is linear."""
    return _interpolation(h, grad.shape[1]).T @ grad @ _interpolation(w, grad.shape[2])


def _model_dtype(model):
    """The float dtype of the model's parameters (float32 for a model without any)."""
    for p in model.parameters():
        return p.data.dtype
    return np.dtype(np.float32)


def class_probability(model, image, target_class, mean=0.0, std=1.0):
    """Softmax probability of target_class for one (C, H, W) image in [0, 1], fed to the
    model as (image - mean) / std, in eval mode (each submodule's mode given back after:
    a model left in training mode, as fit leaves it, gave a dropout draw and moved its
    BatchNorm running statistics)."""
    pixels = (image[None] - mean) / std
    with evaluating(model):
        logits = model(_model_input(model, pixels.astype(_model_dtype(model))))
    return float(_softmax(logits.astype(np.float64))[0, target_class])


def visualize_class(model, target_class, steps=300, lr=1.0, jitter=None, weight_decay=1e-3,
                    clip=1.0, blur_every=10, blur_sigma=0.5, scales=(1,), seed=0,
                    progress=None, mean=0.0, std=1.0, shape=None):
    """Optimise an image to maximise ``target_class``'s logit.

    model: a trained classifier (Module mapping images to (1, num_classes) logits).
    Each step ascends logit[target_class] - weight_decay / 2 * ||image||^2 (at a coarse
    scale, of the small image the step updates): its gradient, the logit's taken on the
    shifted image and shifted back, is scaled to L2 norm ``clip`` when longer (None or 0:
    no clipping), times ``lr`` added, and the image clamped to [0, 1]; every
    ``blur_every`` steps of a scale (0: never) a Gaussian blur of ``blur_sigma`` pixels
    (taps to 2 sigma, reflected edges) follows, clamped again.
    jitter: largest random shift in pixels of the image (None: H // 14, so 2 for 28x28
    images and none for tiny ones, which a shift would destroy; at a coarse scale the
    small image shifts by as much of its size);
    scales: image size divisors, coarse to fine, e.g. (4, 2, 1);
    mean, std: the standardization the model was trained with (``train --standardize``
    saves them): the image stays in [0, 1] pixels and the model sees (image - mean) / std;
    shape: the image's (C, H, W), when ``image_shape`` cannot tell it from the model.
    progress: None or False (no bar), True (a tqdm bar over the steps, as ``fit``'s
    ``progress=True``), or a callable called with 1 after each step (a tqdm bar's
    ``update``).
    The model runs in eval mode in its own dtype; its training mode is restored after,
    and its parameter gradients are left zeroed (each step's are a by-product: call it
    between optimizer steps, not in the middle of accumulating gradients).
    Returns (image (C, H, W) float32 in [0, 1], prob_before, prob_after).
    """
    steps, jitter, blur_every, scales = _check_options(
        steps, lr, jitter, weight_decay, clip, blur_every, blur_sigma, scales)
    check_number("visualize", "mean", mean)
    check_number("visualize", "std", std, low=0, low_open=True)
    # a bool, as fit's progress= takes it, was called after the first step ("'bool'
    # object is not callable") once the model had run
    if not (progress is None or isinstance(progress, (bool, np.bool_)) or callable(progress)):
        raise TypeError(f"visualize: expected progress to be a bool, None or a callable "
                        f"taking a step count (a tqdm bar's update), got "
                        f"{type(progress).__name__}")
    shape = image_shape(model, shape)
    dtype = _model_dtype(model)
    rng = np.random.default_rng(seed)
    bar = None
    if isinstance(progress, (bool, np.bool_)):
        bar = progress_bar(steps, f"class {target_class}", progress, unit="step")
        progress = bar.update if bar is not None else None
    try:
        with evaluating(model):
            return _ascend(model, target_class, shape, dtype, rng, steps, lr, jitter,
                           weight_decay, clip, blur_every, blur_sigma, scales, progress,
                           float(mean), float(std))
    finally:
        if bar is not None:
            bar.close()


def _check_options(steps, lr, jitter, weight_decay, clip, blur_every, blur_sigma, scales):
    """visualize_class's options checked before anything runs (a negative clip reversed
    the step, a zero scale divided by zero, a NaN lr gave a NaN image);
    returns (steps, jitter, blur_every, scales) as ints."""
    steps = check_non_negative_int("visualize", "steps", steps)
    check_number("visualize", "lr", lr, low=0)
    check_number("visualize", "weight_decay", weight_decay, low=0)
    if clip is not None:
        check_number("visualize", "clip", clip, low=0)
    if jitter is not None:
        jitter = check_non_negative_int("visualize", "jitter", jitter)
    blur_every = check_non_negative_int("visualize", "blur_every", blur_every or 0)
    if blur_every:
        check_number("visualize", "blur_sigma", blur_sigma, low=0, low_open=True)
    scales = tuple(scales) if isinstance(scales, (list, tuple)) else (scales,)
    if not scales or any(isinstance(s, bool) or not isinstance(s, numbers.Integral) or s < 1
                         for s in scales):
        raise ValueError(f"visualize: expected scales to be positive ints, got {scales!r}")
    return steps, jitter, blur_every, tuple(int(s) for s in scales)


def _ascend(model, target_class, shape, dtype, rng, steps, lr, jitter, weight_decay, clip,
            blur_every, blur_sigma, scales, progress, mean, std):
    """visualize_class's loop on a model already in eval mode; (image, before, after)."""
    logits = model(_model_input(model, np.zeros((1,) + shape, dtype)))
    if len(getattr(logits, "shape", ())) != 2 or logits.shape[0] != 1:
        raise ValueError(f"visualize: expected a classifier returning (N, num_classes) "
                         f"logits, got {type(logits).__name__} from {type(model).__name__}")
    num_classes = logits.shape[1]
    if not 0 <= target_class < num_classes:
        raise ValueError(f"visualize: target class {target_class} out of range "
                         f"[0, {num_classes})")
    c, h, w = shape
    if jitter is None:
        jitter = h // 14
    image = np.clip(0.5 + 0.05 * rng.standard_normal(shape), 0, 1).astype(np.float32)
    prob_before = class_probability(model, image, target_class, mean, std)
    one_hot = np.zeros((1, num_classes), dtype)
    one_hot[0, target_class] = 1.0
    for index, scale in enumerate(scales):  # steps in all, the remainder to the finest
        steps_here = steps // len(scales) + (index >= len(scales) - steps % len(scales))
        if not steps_here:  # a scale without steps leaves the image as it is
            continue
        # the small image, each side divided by scale (a non-square image keeps its
        # aspect: one size for both sides had upsampled it to H x H, which the model
        # refused, or read as another image)
        size = (max(4, h // scale), max(4, w // scale))
        resized = size != (h, w)
        small = _resize(image, size) if resized else image
        # jitter counts pixels of the image: the small image moves by jitter * size / h
        # of its own pixels (rounded) down, jitter * size / w across, the same distance
        # in the image
        jitter_y, jitter_x = (int(round(jitter * size[0] / h)),
                              int(round(jitter * size[1] / w)))
        for step in range(steps_here):
            if jitter_y == jitter_x:   # (a square image's draws, as they always were)
                dy, dx = (rng.integers(-jitter_y, jitter_y + 1, 2) if jitter_y
                          else (0, 0))
            else:
                bound = np.array([jitter_y, jitter_x])
                dy, dx = rng.integers(-bound, bound + 1)
            shifted = np.roll(small, (dy, dx), axis=(1, 2))
            full = _resize(shifted, (h, w)) if resized else shifted
            model(_model_input(model, ((full[None] - mean) / std).astype(dtype)))
            grad = model.backward(one_hot).reshape(shape) / std  # d/d pixels
            model.zero_grad()  # parameter gradients are a by-product here
            if resized:  # chain rule through the upsampling of the small image
                grad = _resize_backward(grad, *size)
            grad = np.roll(grad, (-dy, -dx), axis=(1, 2)) - weight_decay * small
            norm = np.linalg.norm(grad)
            if clip and norm > clip:
                grad *= clip / norm
            small = np.clip(small + lr * grad, 0, 1)
            if blur_every and (step + 1) % blur_every == 0:
                small = np.clip(_blur(small, blur_sigma), 0, 1)
            if progress is not None:
                progress(1)
        image = (_resize(small, (h, w)) if resized else small).astype(np.float32)
    prob_after = class_probability(model, image, target_class, mean, std)
    return image, prob_before, prob_after
